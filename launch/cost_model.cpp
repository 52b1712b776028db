// The cost model's entry points: names, tiles, and each candidate's evaluation (see
// cost_model.hpp; the schemes' step models are in launch/*_cost.cpp).
#include "launch/cost_model.hpp"

#include <algorithm>
#include <cctype>

#include "launch/candidates.hpp"
#include "launch/head_sharded_cost.hpp"
#include "launch/lightseq_cost.hpp"
#include "launch/memory_model.hpp"
#include "launch/ring_cost.hpp"
#include "launch/tree_cost.hpp"
#include "runtime/comm_formula.hpp"

namespace seqpar {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kTrain:
      return "train";
    case Phase::kPrefill:
      return "prefill";
    case Phase::kDecode:
      return "decode";
  }
  return "?";
}

StatusOr<Phase> parse_phase(std::string_view name) {
  for (Phase phase : {Phase::kTrain, Phase::kPrefill, Phase::kDecode}) {
    if (name == phase_name(phase)) return phase;
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown phase '", std::string(name),
                     "' (expected train, prefill or decode)");
}

const char* placement_name(Placement placement) {
  switch (placement) {
    case Placement::kConsecutive:
      return "consecutive";
  }
  return "?";
}

std::string Candidate::name() const {
  if (scheme == SchemeKind::kHybrid) {
    return str_cat("hybrid ", ulysses_degree, "x", ring_degree);
  }
  return scheme_name(scheme);
}

KernelTiles kernel_tiles_for(const std::string& device_name) {
  std::string lower = device_name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.empty() || lower.rfind("cpu", 0) == 0) return {64, 64, true};
  return {64, 64, false};
}

namespace {

double useful_flops(const ModelInputs& in) {
  const AttentionProblem& p = in.problem;
  if (in.phase == Phase::kDecode) {
    return 4.0 * static_cast<double>(p.batch * p.heads_q * in.q_len * p.head_dim) *
           static_cast<double>(p.seq);
  }
  const double forward = attention_forward_flops(p);
  return in.phase == Phase::kTrain && in.backward ? 3.5 * forward : forward;
}

// The largest bytes any rank sends per layer, from the runtime's formulas.
int64_t formula_bytes(const ModelInputs& in, const Candidate& c, bool backward) {
  const PlanConfig config = plan_config_for(in, c);
  const int ranks = in.topology.ranks();
  int64_t most = 0;
  for (int r = 0; r < ranks; ++r) {
    int64_t bytes = expected_forward_comm(c.scheme, in.problem, ranks, r, c.ulysses_degree,
                                          config.ranks_per_node)
                        .bytes_sent;
    if (backward) {
      bytes += expected_backward_comm(c.scheme, in.problem, ranks, r, c.ulysses_degree,
                                      config.ranks_per_node)
                   .bytes_sent;
    }
    most = std::max(most, bytes);
  }
  return most;
}

std::string gib(int64_t bytes) {
  return str_cat(static_cast<double>(bytes) / static_cast<double>(int64_t{1} << 30), " GiB");
}

}  // namespace

CandidateCost evaluate_candidate(const ModelInputs& in, const Candidate& candidate) {
  CandidateCost cost;
  cost.candidate = candidate;
  cost.useful_flops = useful_flops(in);
  const std::string refused = runtime_exclusion(in, candidate);
  if (!refused.empty()) {
    cost.excluded_reason = refused;
    return cost;
  }
  const KernelTiles tiles = in.tiles.query_rows > 0 && in.tiles.keys > 0
                                ? in.tiles
                                : kernel_tiles_for(in.topology.device_name);
  const AttentionProblem& p = in.problem;
  const int ranks = in.topology.ranks();
  const bool backward = in.phase == Phase::kTrain && in.backward;
  PhaseTime forward, back;
  HeadShardedCost heads;
  const HeadShardedCost* exchange = nullptr;
  Status status = Status::ok();

  if (in.phase == Phase::kDecode) {
    StatusOr<DecodeCost> d =
        candidate.scheme == SchemeKind::kTree ? tree_decode_cost(in) : ring_decode_cost(in);
    if (d.is_ok()) {
      forward = d.value().step;
      cost.bytes_sent_per_rank = d.value().bytes_per_rank;
    }
    status = d.status();
  } else {
    switch (candidate.scheme) {
      case SchemeKind::kRing:
      case SchemeKind::kStriped:
      case SchemeKind::kZigzag: {
        StatusOr<Layout> layout = Layout::make(scheme_layout(candidate.scheme), p.seq, ranks);
        status = layout.status();
        if (!status.is_ok()) break;
        RingCostInput ring;
        ring.topology = &in.topology;
        ring.compute = ComputeModel{&in.rate, p.batch, p.head_dim};
        ring.tiles = tiles;
        ring.layout = &layout.value();
        ring.heads_q = p.heads_q;
        ring.heads_kv = p.heads_kv;
        ring.mask = p.mask;
        ring.dtype_bytes = static_cast<int64_t>(dtype_size(p.dtype));
        ring.members.resize(static_cast<size_t>(ranks));
        for (int r = 0; r < ranks; ++r) ring.members[static_cast<size_t>(r)] = r;
        const RingCost c = ring_engine_cost(ring);
        forward = c.forward;
        back = c.backward;
        break;
      }
      case SchemeKind::kLightSeq: {
        StatusOr<LightSeqCost> c = lightseq_cost(in, tiles);
        status = c.status();
        if (status.is_ok()) {
          forward = c.value().forward;
          back = c.value().backward;
        }
        break;
      }
      case SchemeKind::kUlysses:
      case SchemeKind::kHybrid: {
        StatusOr<HeadShardedCost> c = candidate.scheme == SchemeKind::kUlysses
                                          ? ulysses_cost(in, tiles)
                                          : hybrid_cost(in, tiles, candidate.ulysses_degree);
        status = c.status();
        if (status.is_ok()) {
          heads = c.value();
          exchange = &heads;
          forward = heads.forward;
          back = heads.backward;
        }
        break;
      }
      case SchemeKind::kTree: {
        StatusOr<TreeCost> c = tree_training_cost(in, tiles);
        status = c.status();
        if (status.is_ok()) {
          forward = c.value().forward;
          back = c.value().backward;
        }
        break;
      }
    }
    if (status.is_ok()) cost.bytes_sent_per_rank = formula_bytes(in, candidate, backward);
  }
  if (!status.is_ok()) {
    cost.excluded_reason = str_cat("the model cannot evaluate it: ", status.message());
    return cost;
  }
  cost.forward = forward;
  cost.forward_backward = backward ? forward + back : forward;
  const MemoryEstimate memory = memory_per_rank(in, candidate, exchange);
  cost.memory_bytes_per_rank = memory.total();
  cost.workspace_bytes_per_rank = memory.workspace;
  const int64_t limit = in.topology.device_memory_bytes;
  if (limit > 0 && memory.total() > limit) {
    cost.excluded_reason =
        str_cat("needs ", gib(memory.total()), " per rank (shards ", gib(memory.shards),
                " + workspace ", gib(memory.workspace), "), the device has ", gib(limit));
    return cost;
  }
  cost.feasible = true;
  return cost;
}

std::vector<CandidateCost> evaluate_candidates(const ModelInputs& inputs) {
  std::vector<CandidateCost> out;
  for (const Candidate& c : enumerate_candidates(inputs))
    out.push_back(evaluate_candidate(inputs, c));
  return out;
}

}  // namespace seqpar
