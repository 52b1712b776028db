// --scheme auto for seqpar-run: inputs, rate agreement across ranks, the choice.
#include "tools/auto_scheme.hpp"

#include <algorithm>
#include <cstring>

#include "core/log.hpp"
#include "model/calibration.hpp"
#include "model/topology.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

bool is_host_device(const std::string& name) { return name.empty() || name.rfind("cpu", 0) == 0; }

// One node holding every rank of this process or host, CPU kernels, in-process links.
Topology host_topology(int ranks) {
  Topology t;
  t.nodes = 1;
  t.ranks_per_node = ranks;
  t.device_name = "cpu";
  t.device_memory_bytes = 0;
  t.intra = default_link(LinkKind::kHost);
  t.inter = default_link(LinkKind::kHost);
  t.source = "one host (threads backend)";
  return t;
}

// Rank 0's rate (or its error) on every rank.
Status broadcast_rate(StatusOr<ComputeRate>& rate, Communicator& comm) {
  // Header: ok flag, points; then the message or device/source strings; then the numbers.
  constexpr size_t kText = 512;
  int64_t header[2] = {0, 0};
  char text[2][kText] = {};
  if (comm.rank() == 0) {
    header[0] = rate.is_ok() ? 1 : 0;
    header[1] = rate.is_ok() ? static_cast<int64_t>(rate.value().block_tokens.size()) : 0;
    const std::string first = rate.is_ok() ? rate.value().device : rate.status().message();
    const std::string second = rate.is_ok() ? rate.value().source : "";
    std::strncpy(text[0], first.c_str(), kText - 1);
    std::strncpy(text[1], second.c_str(), kText - 1);
  }
  SEQPAR_RETURN_IF_ERROR(comm.broadcast(header, sizeof(header), 0));
  SEQPAR_RETURN_IF_ERROR(comm.broadcast(text, sizeof(text), 0));
  if (header[0] == 0) {
    rate = SEQPAR_FAIL(StatusCode::kInvalidArgument, "rank 0 found no compute rate: ", text[0]);
    return Status::ok();
  }
  const size_t n = static_cast<size_t>(header[1]);
  std::vector<double> numbers(3 * n);
  if (comm.rank() == 0) {
    const ComputeRate& r = rate.value();
    for (size_t i = 0; i < n; ++i) {
      numbers[i] = static_cast<double>(r.block_tokens[i]);
      numbers[n + i] = r.forward_flops_per_s[i];
      numbers[2 * n + i] = r.backward_flops_per_s[i];
    }
  }
  SEQPAR_RETURN_IF_ERROR(comm.broadcast(numbers.data(), numbers.size() * sizeof(double), 0));
  ComputeRate shared;
  shared.device = text[0];
  shared.source = text[1];
  for (size_t i = 0; i < n; ++i) {
    shared.block_tokens.push_back(static_cast<int64_t>(numbers[i]));
    shared.forward_flops_per_s.push_back(numbers[n + i]);
    shared.backward_flops_per_s.push_back(numbers[2 * n + i]);
  }
  rate = shared;
  return Status::ok();
}

}  // namespace

StatusOr<Topology> resolve_topology(const RunOptions& o, Communicator* comm, int ranks,
                                    bool host_ranks, std::vector<std::string>& notes) {
  Topology topology;
  if (!o.topology_file.empty()) {
    SEQPAR_ASSIGN_OR_RETURN(Topology base, read_topology_file(o.topology_file));
    SEQPAR_ASSIGN_OR_RETURN(topology, topology_from_cli(o.topology, base));
  } else if (o.topology_given()) {
    SEQPAR_ASSIGN_OR_RETURN(topology, topology_from_cli(o.topology));
  } else if (comm != nullptr) {
    SEQPAR_ASSIGN_OR_RETURN(DiscoveredTopology found, discover_topology(*comm));
    for (std::string& note : found.notes) notes.push_back(std::move(note));
    topology = found.topology;
  } else if (host_ranks) {
    topology = host_topology(ranks);
  } else {
    topology = default_topology();
    notes.push_back(
        "no topology given (--topology, --nodes ...): planning for the default, one node of 8 "
        "H100 GPUs");
  }
  SEQPAR_RETURN_IF_ERROR(validate_topology(topology));
  SEQPAR_REQUIRE(ranks <= 0 || topology.ranks() == ranks, StatusCode::kInvalidArgument,
                 "the topology has ", topology.ranks(), " ranks (", topology.nodes, " nodes x ",
                 topology.ranks_per_node, ") but this run has ", ranks);
  return topology;
}

StatusOr<ComputeRate> resolve_rate(const RunOptions& o, const Topology& topology) {
  const AttentionProblem& p = o.plan.problem;
  if (!o.rate_file.empty()) return load_compute_rate(o.rate_file);
  if (!is_host_device(topology.device_name)) return default_h100_rate(p.head_dim);
  CalibrationOptions calibration;
  calibration.head_dim = p.head_dim;
  calibration.dtype = p.dtype;
  calibration.remeasure = o.recalibrate;
  return load_or_calibrate(calibration);
}

ModelInputs model_inputs_for(const RunOptions& o, const Topology& topology,
                             const ComputeRate& rate) {
  ModelInputs in;
  in.topology = topology;
  in.rate = rate;
  in.problem = o.plan.problem;
  in.phase = o.phase;
  in.backward = o.backward;
  in.q_len = o.q_len;
  return in;
}

namespace {

// --measure-links: the topology's intra- and inter-node figures replaced by ping-pongs over the
// run's own communicator (collective).
Status measure_topology_links(Communicator& comm, Topology& topology,
                              std::vector<std::string>& notes) {
  // Rank 0 against a rank of its node, then against the first rank of the next node.
  struct Level {
    const char* name;
    int peer;
    LinkSpec* link;
  };
  const Level levels[] = {
      {"intra", topology.ranks_per_node > 1 ? 1 : 0, &topology.intra},
      {"inter", topology.nodes > 1 ? topology.ranks_per_node : 0, &topology.inter}};
  for (const Level& level : levels) {
    if (level.peer == 0) continue;  // no such pair in this run: the topology's figure stays
    LinkMeasureOptions measure;
    measure.peer = level.peer;
    measure.kind = level.link->kind;
    SEQPAR_ASSIGN_OR_RETURN(const LinkSpec measured, measure_link(comm, measure));
    *level.link = measured;
    notes.push_back(str_cat(level.name, " link measured (rank 0 <-> ", level.peer,
                            "): ", measured.bandwidth_bytes_per_s / 1e9, " GB/s, ",
                            measured.latency_s * 1e6, " us"));
  }
  return Status::ok();
}

}  // namespace

StatusOr<AutoScheme> plan_auto_scheme(const RunOptions& o, Communicator* comm, int ranks) {
  AutoScheme out;
  const bool host_ranks = o.ranks_given || (comm == nullptr && !o.dry_run);
  SEQPAR_ASSIGN_OR_RETURN(Topology topology, resolve_topology(o, comm, comm ? comm->size() : ranks,
                                                              host_ranks, out.notes));
  if (o.measure_links) {
    SEQPAR_REQUIRE(comm != nullptr, StatusCode::kInvalidArgument,
                   "--measure-links needs the ranks' communicator: run under mpirun with "
                   "--backend mpi or nccl (the threads backend and --dry-run plan before any "
                   "communicator exists)");
    SEQPAR_RETURN_IF_ERROR(measure_topology_links(*comm, topology, out.notes));
  }
  StatusOr<ComputeRate> rate =
      comm == nullptr || comm->rank() == 0
          ? resolve_rate(o, topology)
          : StatusOr<ComputeRate>(SEQPAR_FAIL(StatusCode::kInternal, "not rank 0"));
  if (comm != nullptr) SEQPAR_RETURN_IF_ERROR(broadcast_rate(rate, *comm));
  SEQPAR_RETURN_IF_ERROR(rate.status());
  out.inputs = model_inputs_for(o, topology, rate.value());
  out.choice.candidates = evaluate_candidates(out.inputs);
  out.choice.chosen = cheapest_feasible(out.choice.candidates);
  return out;
}

Status no_feasible_candidate(const AutoScheme& planned) {
  std::string reasons;
  for (const CandidateCost& c : planned.choice.candidates) {
    reasons += str_cat("\n  ", c.candidate.name(), ": ", c.excluded_reason);
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument,
                     "--scheme auto: no candidate can run this problem on ",
                     planned.inputs.topology.ranks(), " ranks:", reasons);
}

const CandidateCost* candidate_for(const AutoScheme& planned, const RunOptions& options) {
  const bool decode = options.phase == Phase::kDecode;
  for (const CandidateCost& c : planned.choice.candidates) {
    if (decode) {
      if (c.candidate.decode && c.candidate.decoder == options.decoder) return &c;
      continue;
    }
    if (c.candidate.decode || c.candidate.scheme != options.plan.scheme) continue;
    if (scheme_descriptor(c.candidate.scheme).takes_ulysses_degree &&
        c.candidate.ulysses_degree != options.plan.ulysses_degree) {
      continue;  // a grid the user did not name (U = 0 lets the runtime pick: none matches)
    }
    return &c;
  }
  return nullptr;
}

RunOptions with_choice(const RunOptions& o, const AutoScheme& chosen) {
  RunOptions run = o;
  const Candidate& best = chosen.choice.best().candidate;
  if (best.decode) {
    run.decoder = best.decoder;
  } else {
    apply_choice(chosen.choice.best(), run.plan);
  }
  const Topology& t = chosen.inputs.topology;
  run.plan.ranks_per_node = t.nodes > 1 ? t.ranks_per_node : 0;
  return run;
}

RunOptions with_node_placement(const RunOptions& o, const Topology* known, Communicator* comm,
                               int ranks) {
  RunOptions run = o;
  run.plan.ranks_per_node = 0;
  // The flat scheme, with rank 0 (or the one process) saying why.
  auto flat = [&](const std::string& why) {
    if (comm == nullptr || comm->rank() == 0) {
      SEQPAR_LOG_WARN(
          "no node placement for ",
          o.phase == Phase::kDecode ? decoder_name(o.decoder) : scheme_name(o.plan.scheme), " (",
          why, "); running without node groups");
    }
    return run;
  };
  Topology topology;
  if (known != nullptr) {
    topology = *known;
  } else if (comm != nullptr && o.topology_file.empty() && !o.topology_given()) {
    StatusOr<DiscoveredTopology> found = discover_topology(*comm);  // collective
    if (!found.is_ok()) return flat(found.status().message());
    if (!found->consecutive_ranks_share_nodes) {
      return flat("consecutive ranks do not share nodes; mpirun --map-by slot places them so");
    }
    topology = found->topology;
  } else {
    // Ranks that disagree here (a topology file one node lacks) end up with different
    // ranks_per_node, which the plan's config agreement reports on every rank.
    std::vector<std::string> notes;
    StatusOr<Topology> resolved = resolve_topology(o, nullptr, comm ? comm->size() : ranks,
                                                   /*host_ranks=*/true, notes);
    if (!resolved.is_ok()) return flat(resolved.status().message());
    topology = resolved.value();
  }
  run.plan.ranks_per_node = topology.nodes > 1 ? topology.ranks_per_node : 0;
  return run;
}

}  // namespace seqpar
