#pragma once
// LightSeq's load-balanced DistAttn (Li et al. 2023) for the causal mask on the contiguous
// layout: the schedule of lightseq_schedule.hpp, P/2 + 1 steps of about (P + 1) / 2 block pairs
// per rank instead of ring's r + 1 on rank r.
//
// Forward, step t: a rank computes its pair while the next step's inputs (K/V from their owner,
// queries from a late rank to its helper) are already in flight. A helper's partial (O, LSE)
// goes back to the query owner in fp32 and is merged into the owner's running fp32 (O, LSE).
// Backward, same pairs: a query owner sends the dK/dV share of the block it computed to the
// block's owner; a helper (whose K/V are its own) keeps its dK/dV share and sends the dQ share to
// the query owner, having received Q, dO, the final LSE and delta. Shares travel in the storage
// dtype and are summed in fp32 by their owner; their transfer overlaps the next step's compute.
// K/V keep their Hkv heads on the wire (GQA/MQA are never replicated).
#include <memory>

#include "runtime/lightseq_schedule.hpp"
#include "runtime/scheme.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

class LightSeqAttention final : public Scheme {
 public:
  static StatusOr<std::unique_ptr<Scheme>> create(const SchemeContext& context);

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override { return workspace_.bytes(); }

 private:
  explicit LightSeqAttention(const SchemeContext& context)
      : ctx_(context),
        shard_(ShardSizes::of_rank(context, context.comm->rank())),
        schedule_(lightseq_schedule(context.layout.ranks())) {}
  Status allocate_workspace();
  PositionMap positions_of(int rank) const;
  ShardSizes sizes_of(int rank) const;  // rank's shards (contiguous shards differ by <= 1 token)
  // Posts step `step`'s inputs into landing buffers `slot`: K/V to and from their pair's
  // computing rank, and the queries (with dO, LSE, delta when `backward`) to and from a helper.
  Status post_inputs(int step, int slot, const void* q, const void* k, const void* v,
                     const void* dout, const float* lse, bool backward, Request& request);

  SchemeContext ctx_;
  ShardSizes shard_;  // sizes of this rank's shards
  LightSeqSchedule schedule_;

  // One arena, carved once (see allocate_workspace). Buffers that hold another rank's block are
  // sized for the largest shard. The arena is on the plan's device.
  WorkspaceBuffer workspace_;
  char* kv_recv_[2] = {nullptr, nullptr};  // (2, B, S_local, Hkv, D) storage: K then V, per slot
  char* q_recv_[2] = {nullptr, nullptr};   // per slot, a helped rank's: Q, dO (B, S_local, Hq, D)
                                           // storage, then LSE, delta (B, Hq, S_local) fp32
  float* acc_q_ = nullptr;         // (B, S_local, Hq, D) fp32: running O (forward) or dQ (backward)
  float* delta_ = nullptr;         // (B, Hq, S_local) fp32: rowsum(dO * O)
  float* partial_ = nullptr;       // helper's result: (B, S_local, Hq, D) O then (B, Hq, S_local)
                                   // LSE fp32 (forward); (B, S_local, Hq, D) dQ share (backward)
  float* partial_recv_ = nullptr;  // a helper's (O, LSE) for our queries, as partial_ (forward)
  float* dkv_local_ = nullptr;     // (2, B, S_local, Hkv, D) fp32: a dK, dV share for another rank
  float* dkv_total_ = nullptr;     // (2, B, S_local, Hkv, D) fp32: our own block's dK, dV, summed
  void* share_send_ = nullptr;     // storage: a dK, dV share (2 * kv) or a dQ share (q) going out
  void* dkv_recv_ = nullptr;       // (2, B, S_local, Hkv, D) storage: a share of our dK, dV
  void* dq_recv_ = nullptr;        // (B, S_local, Hq, D) storage: a helper's share of our dQ
  float* kernel_scratch_ = nullptr;  // the block kernels' work area (block_kernel_scratch_bytes)
};

}  // namespace seqpar
