#pragma once
// Ring attention over any token layout: ring (contiguous), striped and zigzag are this one
// engine with different layouts. Each step a rank computes its queries against the K/V block it
// holds, with the block's absolute positions, while the next block is already in flight; the
// causal structure (the diagonal, striped's shifted diagonal, zigzag's half blocks) follows from
// the block kernel's position rule and its tile skipping, with no mask logic here.
//
// Backward rings K/V again. At step s a rank computes its share of dK/dV for the block it holds
// and sends that share straight to the block's owner (rank r - s), while receiving a share of
// its own block from rank r + s; each step is a permutation, overlapped with the next step's
// compute. The owner sums the shares in fp32, so every share is rounded to the storage dtype
// once, instead of a running sum being rounded at each of P hops (the travelling-accumulator
// design of other ring implementations), and P-1 transfers go out instead of P.
#include <memory>
#include <vector>

#include "attention/block_params.hpp"
#include "runtime/scheme.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

class RingAttention final : public Scheme {
 public:
  static StatusOr<std::unique_ptr<Scheme>> create(const SchemeContext& context);

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override { return workspace_.bytes(); }

 private:
  explicit RingAttention(const SchemeContext& context)
      : ctx_(context), shard_(ShardSizes::of_rank(context, context.comm->rank())) {}
  Status allocate_workspace();
  // Posts the K, V held at `step` to the next rank and the next block's landing from the
  // previous one (blocks of contiguous layouts may differ by a token between ranks).
  Status post_kv_shift(int step, const void* k, const void* v, char* landing, Request& request);
  size_t kv_bytes_of(int rank) const;  // one of K or V of rank `rank`'s block

  SchemeContext ctx_;
  ShardSizes shard_;                       // sizes of this rank's shards
  std::vector<int64_t> all_positions_;     // (S): every rank's token positions, rank by rank
  std::vector<PositionMap> positions_of_;  // (P): rank r's positions, affine when one segment

  // One arena on the plan's device, carved once (see allocate_workspace):
  WorkspaceBuffer workspace_;
  // (2, B, S_local, Hkv, D) storage: K then V, double buffered, sized for the largest block
  void* kv_recv_[2] = {nullptr, nullptr};
  float* acc_q_ = nullptr;      // (B, S_local, Hq, D) fp32: running O (forward) or dQ (backward)
  float* delta_ = nullptr;      // (B, Hq, S_local) fp32: rowsum(dO * O)
  float* dkv_local_ = nullptr;  // (2, B, S_local, Hkv, D) fp32: this step's dK, dV share
  float* dkv_total_ = nullptr;  // (2, B, S_local, Hkv, D) fp32: our own block's dK, dV, summed
  void* dkv_send_ = nullptr;    // (2, B, S_local, Hkv, D) storage: a share going to its owner
  void* dkv_recv_ = nullptr;    // (2, B, S_local, Hkv, D) storage: a share of our block arriving
  float* kernel_scratch_ = nullptr;  // the block kernels' work area (block_kernel_scratch_bytes)
};

}  // namespace seqpar
