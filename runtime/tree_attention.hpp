#pragma once
// Tree attention (Shyam et al. 2024), prefill/training form. Contiguous layout: rank r holds
// run r of a balanced split of the S tokens of Q, K, V (S_local = S/P, or one more on the first
// S % P ranks). Every gathered slice is padded to the largest shard, S_max = ceil(S/P) tokens:
// a rank with one token fewer sends a zero row per batch, whose results are dropped (zero rows
// are finite in forward and add exactly nothing to dK, dV in backward, with dO and delta 0).
// Queries are all-gathered; each rank computes the partial (O, LSE) of ALL queries against its own
// K/V (the block kernel with absolute positions, one call per gathered query block; rows its keys
// fully mask come out exact: O 0, LSE -inf); the partials are combined exactly by TreeCombine (an
// all-reduce of the max of LSE, then one packed fp32 all-reduce of numerator and denominator, per
// node when ranks_per_node says the ranks span nodes); each rank keeps its own rows.
//
// Backward: one all-gather of every rank's (LSE, delta, Q, dO); each rank computes dK, dV of its
// own keys against all queries (exact, nothing to reduce) and a partial dQ of all queries against
// its keys, in fp32; a reduce-scatter (sum, fp32) gives each rank the dQ of its rows.
//
// Communication per rank, q = B*S_max*Hq*D elements, s = B*Hq*S_max, e = sizeof(dtype):
//   forward   all_gather Q: (P-1)*q*e; all_reduce max: P*s*4; all_reduce sum: P*(q+s)*4
//             (hierarchical: each all_reduce becomes reduce_scatter + all_reduce + all_gather on
//             the node and cross groups, see tree_combine.hpp)
//   backward  all_gather (LSE, delta, Q, dO): (P-1)*(2*s*4 + 2*q*e); reduce_scatter dQ:
//             (P-1)*q*4
// GQA: K/V never leave their rank, so nothing is replicated.
#include <memory>

#include "attention/block_params.hpp"
#include "runtime/comm_formula.hpp"
#include "runtime/scheme.hpp"
#include "runtime/tree_combine.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

// Sent per rank by a forward (over all communicators, hierarchy included) and a backward.
CommVolume tree_forward_comm(const AttentionProblem& p, int ranks, int ranks_per_node);
CommVolume tree_backward_comm(const AttentionProblem& p, int ranks);

class TreeAttention final : public Scheme {
 public:
  static StatusOr<std::unique_ptr<Scheme>> create(const SchemeContext& context);

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + combine_->workspace_bytes();
  }
  const TreeCombine& combine() const { return *combine_; }
  // The hierarchical combine's node and cross communicators (empty when flat).
  std::span<Communicator* const> subgroups() const override { return combine_->subgroups(); }

 private:
  explicit TreeAttention(const SchemeContext& context)
      : ctx_(context),
        shard_(ShardSizes::of_rank(context, context.comm->rank())),
        slot_(ShardSizes::largest(context)) {}
  Status allocate_workspace();
  PositionMap positions_of(int rank) const;                        // rank's contiguous tokens
  bool padded() const { return shard_.q_elems != slot_.q_elems; }  // our shard is a token short

  SchemeContext ctx_;
  ShardSizes shard_;  // sizes of this rank's shards (B, S_local, ...)
  ShardSizes slot_;   // sizes of one gathered slice (B, S_max, ...)
  std::unique_ptr<TreeCombine> combine_;
  size_t pack_bytes_ = 0;  // one rank's backward gather slice: lse, delta (fp32), q, dout

  // One arena on the plan's device, carved once (see allocate_workspace):
  WorkspaceBuffer workspace_;
  void* q_stage_ = nullptr;          // (B, S_max, Hq, D) storage: our queries, zero-padded
  void* q_all_ = nullptr;            // (P, B, S_max, Hq, D) storage: every rank's queries
  float* acc_all_ = nullptr;         // (P, B, S_max, Hq, D) fp32: partial O (fwd) or dQ (bwd)
  float* lse_all_ = nullptr;         // (P, B, Hq, S_max) fp32: partial LSE of every query
  char* pack_ = nullptr;             // (pack_bytes_): this rank's lse, delta, q, dout, padded
  char* pack_all_ = nullptr;         // (P, pack_bytes_): every rank's pack
  float* dq_own_ = nullptr;          // (B, S_max, Hq, D) fp32: dQ of this rank's rows
  float* dkv_ = nullptr;             // (2, B, S_local, Hkv, D) fp32: dK then dV of own keys
  float* kernel_scratch_ = nullptr;  // the block kernels' work area
};

}  // namespace seqpar
