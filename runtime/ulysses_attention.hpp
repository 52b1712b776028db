#pragma once
// Ulysses (DeepSpeed-Ulysses) attention: sequence-sharded in and out (contiguous layout), head-
// sharded inside. Forward: one all-to-all turns every rank's Q, K, V tokens into the whole
// sequence for a slice of heads (partition/head_split.hpp), the rank runs the block kernel once
// over the whole sequence for those heads, and a second all-to-all returns O and LSE to the
// tokens' owners. Backward: delta = rowsum(dO * O) is computed at the token owner; Q, dO, K, V,
// LSE and delta go out in one all-to-all, dQ, dK, dV come back in another, and a kv head shared
// by several ranks (Hkv < P) gets its dK, dV shares summed in fp32 at the token owner.
//
// The all-to-alls are runtime/head_exchange.hpp's over the world: uneven head splits are
// all_to_all_v calls whose counts and offsets are fixed at plan creation; pieces travel in the
// storage dtype (LSE and delta in fp32); K/V heads are never replicated to Hq heads, and a kv head
// goes only to the ranks whose q heads read it.
#include <memory>

#include "runtime/head_exchange.hpp"
#include "runtime/scheme.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

class UlyssesAttention final : public Scheme {
 public:
  static StatusOr<std::unique_ptr<Scheme>> create(const SchemeContext& context);

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + exchange_->workspace_bytes();
  }

 private:
  explicit UlyssesAttention(const SchemeContext& context) : ctx_(context) {}
  Status allocate_workspace();
  BlockShape block_shape() const;

  SchemeContext ctx_;
  int64_t local_seq_ = 0;  // S_local
  // The head <-> sequence all-to-alls over the world and this rank's head tensors (S tokens).
  std::unique_ptr<HeadExchange> exchange_;

  // One arena, carved once (see allocate_workspace). Heads are this rank's slice; S the whole
  // sequence. The arena is on the plan's device.
  WorkspaceBuffer workspace_;
  float* acc_q_ = nullptr;           // (B, S, q_r, D) fp32: O (forward) or dQ (backward)
  float* dkv_heads_ = nullptr;       // (2, B, S, kv_r, D) fp32: dK then dV of this rank's heads
  float* delta_local_ = nullptr;     // (B, Hq, S_local) fp32: rowsum(dO * O) of our tokens
  float* kernel_scratch_ = nullptr;  // the block kernels' work area
};

}  // namespace seqpar
