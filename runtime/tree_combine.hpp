#pragma once
// TreeCombine: the exact combination of per-rank partial attention results (O, LSE) over all
// ranks, as tree attention does it (Shyam et al. 2024): an all-reduce of the max of LSE, then ONE
// packed all-reduce (sum) of the rescaled numerator O * exp(LSE - max) and denominator
// exp(LSE - max), all in fp32; then O = num / den and LSE = max + log(den) on every rank.
//
// Hierarchy: with ranks_per_node R, 1 < R < P (consecutive ranks share a node), each all-reduce
// runs as a reduce-scatter inside the node (each local rank ends with 1/R of the buffer reduced
// over its node), an all-reduce of that slice among the P/R ranks with the same local rank (one
// per node, so every node's R NICs each carry 1/R of the cross-node traffic), and an all-gather
// inside the node. Cross-node bytes per node are one buffer, as with node leaders, but no rank
// idles and nothing is broadcast back. Buffers are padded to a multiple of R (padding is never
// read). The node and cross communicators are split once, at creation.
#include <memory>

#include "attention/dispatch.hpp"
#include "comm/communicator.hpp"
#include "runtime/schedule.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

// The rows a combine works on: out (batch, seq, heads, head_dim), lse (batch, heads, seq), fp32.
struct CombineShape {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
  int64_t out_elems() const { return batch * seq * heads * head_dim; }
  int64_t lse_elems() const { return batch * heads * seq; }
};

class TreeCombine {
 public:
  // Collective over `comm` (it splits it when hierarchical). `comm` outlives the combine. The
  // workspace lives on target.device, and combine()'s weighing and normalising run there (on a
  // CUDA target, as kernels on its stream: runtime/cuda/tree_combine.cu).
  static StatusOr<std::unique_ptr<TreeCombine>> create(Communicator& comm, int ranks_per_node,
                                                       const CombineShape& shape,
                                                       const KernelTarget& target);

  // Combines every rank's partial (out, lse) in place: out (B, S, H, D) normalised fp32, lse
  // (B, H, S) fp32 (fully masked rows: out 0, lse -inf). Afterwards batches [keep_begin,
  // keep_end) hold the exact result over all ranks' keys; other rows are left unspecified.
  Status combine(float* out, float* lse, int64_t keep_begin, int64_t keep_end);

  // What create() allocates on each rank (no communicator needed).
  static size_t workspace_bytes_for(const CombineShape& shape, int ranks, int ranks_per_node);
  // One combine as schedule steps for every rank: the max all-reduce, then the packed sum
  // all-reduce, each a step (flat, or node reduce-scatter + cross all-reduce + node all-gather).
  static void schedule(const CombineShape& shape, int ranks, int ranks_per_node, ScheduleSink& out);

  // The node and cross communicators (empty when flat), for the plan's accounting.
  std::span<Communicator* const> subgroups() const {
    return node_ ? std::span<Communicator* const>(subgroups_) : std::span<Communicator* const>();
  }
  size_t workspace_bytes() const { return workspace_.bytes(); }

 private:
  TreeCombine(Communicator& comm, const CombineShape& shape, const KernelTarget& target)
      : comm_(comm), shape_(shape), target_(target) {}
  size_t padded(int64_t count) const;  // count rounded up to a multiple of the node size
  Status all_reduce(float* data, int64_t count, ReduceOp op);
  // combine()'s weighing and normalising on the target's stream (runtime/cuda/tree_combine.cu);
  // the max all-reduce is done by then.
  Status combine_on_device(float* out, float* lse, int64_t keep_begin, int64_t keep_end);

  Communicator& comm_;
  CombineShape shape_;
  KernelTarget target_;                  // where the workspace lives and its copies run
  std::unique_ptr<Communicator> node_;   // the ranks of this node (hierarchical only)
  std::unique_ptr<Communicator> cross_;  // one rank per node, same local rank (hierarchical only)
  Communicator* subgroups_[2] = {nullptr, nullptr};  // node_, cross_
  WorkspaceBuffer workspace_;                        // on target_.device
  // The workspace's regions, each padded to a multiple of the node size when hierarchical.
  struct Buffers {
    float* max = nullptr;     // (B, H, S) fp32: max over ranks of lse
    float* packed = nullptr;  // (B, S, H, D) numerator then (B, H, S) denominator, fp32
    float* slice = nullptr;   // 1/R of `packed`: this rank's node-reduced slice (hierarchical)
    void add_to(WorkspaceArena& arena, const CombineShape& shape, int ranks, int ranks_per_node);
  } buf_;
};

}  // namespace seqpar
