#pragma once
// The one cost model of seqpar: the launcher's --scheme auto and seqpar-sim both call
// evaluate_candidates(), so they can never disagree. Equations and what was checked:
// docs/cost_model.md.
//
// For each candidate (scheme x Ulysses degree U x ring degree R x rank placement, or a decoder),
// the predicted time per layer is the cost of the scheme's own schedule (runtime/schedule.hpp),
// step by step in lock step (model/schedule_cost.hpp):
//   step time = max(compute, communication)   when the scheme posts the transfer before the
//                                             compute it overlaps (ring family, LightSeq inputs)
//             = compute + communication       when it cannot (Ulysses' and hybrid's all-to-alls,
//                                             the tree's collectives, results sent after compute)
// compute  = the slowest rank's block-kernel time that step: the kernel's kept tiles (exact, from
//            the layouts' positions and the kernel's tile skipping, counted in closed form for
//            affine position maps) times a full tile's FLOPs, over the calibrated rate at the
//            step's block size (ComputeRate::forward_at / backward_at);
// comm     = the slowest rank's transfers that step: per link class (intra-node, inter-node, by
//            Topology::same_node of the two ranks), bytes / bandwidth + latency per message; the
//            two classes run in parallel. Collectives: ring all-gather / reduce-scatter ((n-1)/n
//            of the data over the slowest link crossed, n-1 latencies), all-reduce the cheaper of
//            ring and tree, all-to-all the bytes to off-node and on-node peers over their links.
//            The bytes are the schedule's, which are what the runtime's counters must show.
// memory   = shards (inputs, outputs, gradients) + the workspace the scheme's descriptor says
//            its plan allocates, per rank (exactly Plan::workspace_bytes()).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "model/calibration.hpp"
#include "model/topology.hpp"
#include "runtime/problem.hpp"
#include "runtime/scheme_kind.hpp"

namespace seqpar {

// How a candidate's ranks sit on the nodes. The runtime places them one way today: consecutive
// ranks share a node, a hybrid's Ulysses groups are U consecutive ranks (runtime/hybrid_grid.hpp).
enum class Placement : int { kConsecutive = 0 };
const char* placement_name(Placement placement);

struct Candidate {
  SchemeKind scheme = SchemeKind::kZigzag;  // train, prefill
  int ulysses_degree = 1;  // U: ranks per Ulysses group (P for ulysses, 1 for the ring family)
  int ring_degree = 1;     // R = P / U: ranks (or groups) on the ring
  Placement placement = Placement::kConsecutive;
  bool decode = false;                       // a decoder, not a training scheme
  DecoderKind decoder = DecoderKind::kTree;  // decode
  std::string name() const;                  // "zigzag", "ulysses", "hybrid 8x2" (U x R), "tree"
  const char* scheme_label() const;          // the scheme's or decoder's name: "hybrid", "tree"
};

// The block kernel's tiles, which decide what causal skipping saves.
struct KernelTiles {
  int64_t query_rows = 64;  // query rows per tile
  int64_t keys = 64;        // keys per tile
  // true: a tile's rows are positions x the q heads of a GQA group (the CPU kernel); false: one
  // q head's positions (the CUDA kernels).
  bool rows_pack_group = true;
  // Query positions per tile for a GQA group of `group` q heads.
  int64_t query_positions(int64_t group) const {
    if (!rows_pack_group) return query_rows;
    return group >= query_rows ? 1 : query_rows / group;
  }
};
// The CPU kernel's tiles (attention/cpu_tile_ops.hpp: 64 rows x 64 keys, rows packing a GQA
// group) for "cpu" devices; for GPUs, the CUDA forward kernel's 64 positions of one q head x 64
// keys (attention/cuda/block_forward.cu).
KernelTiles kernel_tiles_for(const std::string& device_name);

struct ModelInputs {
  Topology topology;
  ComputeRate rate;
  // seq: the sequence (train, prefill), or the cache's tokens before a decoding step (decode)
  AttentionProblem problem;
  bool backward = true;  // train: forward + backward
  Phase phase = Phase::kTrain;
  int64_t q_len = 1;  // decode: new query tokens per step
  // 0 x 0: kernel_tiles_for(topology.device_name).
  KernelTiles tiles{0, 0};
};

// One phase's predicted time per layer, and what it is made of.
struct PhaseTime {
  double seconds = 0;          // predicted wall time
  double compute_seconds = 0;  // sum over steps of the slowest rank's compute
  double comm_seconds = 0;     // sum over steps of the slowest rank's communication
  int steps = 0;               // the schedule's steps (ScheduleSink::step calls)
};

struct CandidateCost {
  Candidate candidate;
  bool feasible = false;                 // the runtime would run it and it fits memory
  std::string excluded_reason;           // why not (the runtime's own message where it has one)
  PhaseTime forward;                     // forward (train, prefill) or one decoding step
  PhaseTime forward_backward;            // forward + backward (train with backward; else = forward)
  int64_t bytes_sent_per_rank = 0;       // per layer (fwd, or fwd+bwd), the largest over ranks
  int64_t memory_bytes_per_rank = 0;     // shards + workspace, the largest over ranks
  int64_t workspace_bytes_per_rank = 0;  // the plan's workspace alone, the largest over ranks
  double useful_flops =
      0;  // the whole problem's FLOPs, docs/reference_figures.md's convention (fwd, or fwd+bwd)
  // What the selection ranks by: forward_backward for train with backward, else forward.
  double seconds() const { return forward_backward.seconds; }
};

// Memory per rank of a candidate: the largest total over ranks, and the largest workspace.
struct MemoryUse {
  int64_t total = 0;              // shards + workspace, the largest over ranks
  int64_t workspace = 0;          // the workspace alone, the largest over ranks
  int64_t shards_of_largest = 0;  // the parts of the largest total
  int64_t workspace_of_largest = 0;
  void note(int64_t shards, int64_t workspace_bytes) {
    if (shards + workspace_bytes > total) {
      total = shards + workspace_bytes;
      shards_of_largest = shards;
      workspace_of_largest = workspace_bytes;
    }
    if (workspace_bytes > workspace) workspace = workspace_bytes;
  }
};

// Every candidate for the topology's ranks (model/candidates.hpp), each evaluated, in the
// order of enumerate_candidates(). Infeasible candidates are present with their reason (and
// their predicted time where the model can still give one). Fast: closed-form tile counts, so a
// thousand ranks and millions of tokens take milliseconds per candidate.
std::vector<CandidateCost> evaluate_candidates(const ModelInputs& inputs);

// One candidate.
CandidateCost evaluate_candidate(const ModelInputs& inputs, const Candidate& candidate);

}  // namespace seqpar
