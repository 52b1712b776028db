// The cost model's entry points: names, tiles, and each candidate's evaluation from its
// scheme's schedule and workspace (see cost_model.hpp).
#include "model/cost_model.hpp"

#include <algorithm>
#include <cctype>

#include "core/enum_names.hpp"
#include "model/candidates.hpp"
#include "model/schedule_cost.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {

constexpr auto kPlacementNames = enum_names<Placement>("consecutive");

const char* placement_name(Placement placement) { return kPlacementNames.name(placement); }

const char* Candidate::scheme_label() const {
  return decode ? decoder_name(decoder) : scheme_name(scheme);
}

std::string Candidate::name() const {
  if (!decode && scheme_descriptor(scheme).takes_ulysses_degree) {
    return str_cat(scheme_name(scheme), " ", ulysses_degree, "x", ring_degree);
  }
  return scheme_label();
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
  if (in.phase == Phase::kDecode) {  // the first step: row i sees the prompt and i + 1 new keys
    const double keys = static_cast<double>(in.q_len) * static_cast<double>(p.seq) +
                        static_cast<double>(in.q_len * (in.q_len + 1) / 2);
    return 4.0 * static_cast<double>(p.batch * p.heads_q * p.head_dim) * keys;
  }
  const double forward = attention_forward_flops(p);
  return in.phase == Phase::kTrain && in.backward ? 3.5 * forward : forward;
}

std::string gib(int64_t bytes) {
  return str_cat(static_cast<double>(bytes) / static_cast<double>(int64_t{1} << 30), " GiB");
}

// The device the model plans for: the CPU kernels (whose scratch counts) on a cpu topology,
// the CUDA kernels otherwise.
Device device_of(const Topology& topology) {
  const std::string& name = topology.device_name;
  return name.empty() || name.rfind("cpu", 0) == 0 ? Device::kHost : Device::kCuda;
}

// Bytes of the caller's tensors on each rank: Q, K, V, O, LSE of its `tokens`, and for training
// dO, dQ, dK, dV.
int64_t shard_bytes(const AttentionProblem& p, int64_t tokens, bool backward) {
  const ShardSizes s = ShardSizes::of(p, tokens);
  const int64_t inputs = static_cast<int64_t>(2 * s.q_bytes + 2 * s.kv_bytes + s.lse_elems * 4);
  return inputs + (backward ? static_cast<int64_t>(2 * s.q_bytes + 2 * s.kv_bytes) : 0);
}

// A pass's time and per-rank volumes, from `describe` called with a fresh evaluator; `work`
// holds the tile counts the candidate's passes share.
template <class Describe>
StatusOr<PhaseTime> cost_of(const ModelInputs& in, TileWork& work, bool backward,
                            std::vector<CommVolume>& volumes, Describe describe) {
  const AttentionProblem& p = in.problem;
  ScheduleCost cost(in.topology, ComputeModel{&in.rate, p.batch, p.head_dim}, work, backward,
                    in.topology.ranks());
  SEQPAR_RETURN_IF_ERROR(describe(cost));
  const PhaseTime time = cost.time();
  for (size_t r = 0; r < volumes.size(); ++r) volumes[r] += cost.volumes()[r];
  return time;
}

// Training and prefill: the scheme's passes and its plan's workspace on every rank.
Status evaluate_scheme(const ModelInputs& in, const Candidate& candidate, const KernelTiles& tiles,
                       CandidateCost& cost, MemoryUse& memory) {
  const PlanConfig config = plan_config_for(in, candidate);
  const int ranks = in.topology.ranks();
  const SchemeDescriptor& scheme = scheme_descriptor(candidate.scheme);
  SEQPAR_ASSIGN_OR_RETURN(const Layout layout, scheme.layout(config, ranks));
  const SchemeContext context{
      in.problem, candidate.scheme,      layout,         nullptr, device_of(in.topology),
      nullptr,    config.ranks_per_node, config.backward};
  std::vector<CommVolume> volumes(static_cast<size_t>(ranks));
  TileWork work(tiles, in.problem.mask);
  SEQPAR_ASSIGN_OR_RETURN(cost.forward, cost_of(in, work, false, volumes, [&](ScheduleSink& out) {
                            return scheme.schedule(context, Pass::kForward, out);
                          }));
  cost.forward_backward = cost.forward;
  if (config.backward) {
    SEQPAR_ASSIGN_OR_RETURN(const PhaseTime backward,
                            cost_of(in, work, true, volumes, [&](ScheduleSink& out) {
                              return scheme.schedule(context, Pass::kBackward, out);
                            }));
    cost.forward_backward = cost.forward + backward;
  }
  for (int r = 0; r < ranks; ++r) {
    cost.bytes_sent_per_rank =
        std::max(cost.bytes_sent_per_rank, volumes[static_cast<size_t>(r)].bytes_sent);
    SEQPAR_ASSIGN_OR_RETURN(const size_t workspace, scheme.workspace_bytes(context, r));
    memory.note(shard_bytes(in.problem, layout.local_seq(r), config.backward),
                static_cast<int64_t>(workspace));
  }
  return Status::ok();
}

// Decode: the first step of the decoder (the prompt's cache and q_len new tokens), and its
// plan's memory.
Status evaluate_decoder(const ModelInputs& in, const Candidate& candidate, const KernelTiles& tiles,
                        CandidateCost& cost, MemoryUse& memory) {
  const DecodeConfig config = DecodePlan::resolved(decode_config_for(in, candidate));
  const AttentionProblem& p = config.problem;
  const int ranks = in.topology.ranks();
  const DecodeContext context = DecodeContext::of(config, ranks, nullptr);
  const DecoderDescriptor& decoder = decoder_descriptor(candidate.decoder);
  std::vector<CommVolume> volumes(static_cast<size_t>(ranks));
  TileWork work(tiles, in.problem.mask);  // decoding's blocks are dense: it stays empty
  SEQPAR_ASSIGN_OR_RETURN(cost.forward, cost_of(in, work, false, volumes, [&](ScheduleSink& out) {
                            return decoder.schedule(context, p.seq + config.q_len, out);
                          }));
  cost.forward_backward = cost.forward;
  // The cache at capacity, and the step's rows: q and out in storage, lse in fp32.
  const ShardSizes rows = ShardSizes::of(p, config.q_len);
  const int64_t cache =
      2 * static_cast<int64_t>(
              ShardSizes::of(p, KvCache::local_capacity_for(context.cache, ranks)).kv_bytes);
  const int64_t shards =
      cache + static_cast<int64_t>(2 * rows.q_bytes + rows.lse_elems * sizeof(float));
  for (int r = 0; r < ranks; ++r) {
    cost.bytes_sent_per_rank =
        std::max(cost.bytes_sent_per_rank, volumes[static_cast<size_t>(r)].bytes_sent);
    SEQPAR_ASSIGN_OR_RETURN(const size_t workspace, decoder.workspace_bytes(context, r));
    memory.note(shards, static_cast<int64_t>(workspace));
  }
  return Status::ok();
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
  MemoryUse memory;
  const Status status = candidate.decode ? evaluate_decoder(in, candidate, tiles, cost, memory)
                                         : evaluate_scheme(in, candidate, tiles, cost, memory);
  if (!status.is_ok()) {
    cost.excluded_reason = str_cat("the model cannot evaluate it: ", status.message());
    return cost;
  }
  cost.memory_bytes_per_rank = memory.total;
  cost.workspace_bytes_per_rank = memory.workspace;
  const int64_t limit = in.topology.device_memory_bytes;
  if (limit > 0 && memory.total > limit) {
    cost.excluded_reason = str_cat(
        "needs ", gib(memory.total), " per rank (shards ", gib(memory.shards_of_largest),
        " + workspace ", gib(memory.workspace_of_largest), "), the device has ", gib(limit));
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
