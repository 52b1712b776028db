#pragma once
// Hybrid attention (USP / LoongTrain / TransformerEngine a2a+p2p): Ulysses inside groups of U
// consecutive ranks, a zigzag ring across the R groups (runtime/hybrid_grid.hpp places them).
// Shards are in the hybrid_zigzag layout (partition/layout.hpp): group g holds zigzag chunks g
// and 2R-1-g of the R groups, and rank u of the group holds the u-th 1/U of them.
//
// Forward: an all-to-all inside the group turns each rank's (S/P tokens, all heads) into (the
// group's S/R tokens, rank u's head slice of split_heads(Hq, Hkv, U)); RingAttention then runs
// the zigzag ring over the R groups on the head-sliced problem (every rank of one ring has the
// same u, so the same heads); a second all-to-all returns O and LSE to the tokens' owners.
// Backward: Q, dO, O, K, V and LSE go out in one all-to-all (the ring computes delta =
// rowsum(dO * O) itself), the ring runs its backward, and dQ, dK, dV come back in another; a kv
// head shared by several ranks of the group (Hkv < U) gets its dK, dV shares summed in fp32.
//
// The group and ring communicators are split off the plan's at creation and owned here; their
// traffic is reported through subgroups(). The group all-to-alls are runtime/head_exchange.hpp's
// (sending O, not delta, in backward), with counts fixed at creation, so a step allocates nothing.
#include <memory>
#include <span>

#include "runtime/head_exchange.hpp"
#include "runtime/hybrid_grid.hpp"
#include "runtime/scheme.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

class HybridAttention final : public Scheme {
 public:
  static StatusOr<std::unique_ptr<Scheme>> create(const SchemeContext& context);

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override;
  // {this rank's Ulysses group (rank u of U), its ring across the groups (rank g of R)}.
  std::span<Communicator* const> subgroups() const override { return subgroups_; }

 private:
  explicit HybridAttention(const SchemeContext& context) : ctx_(context) {}
  Status split_communicators();
  Status create_ring();
  Status allocate_workspace();

  SchemeContext ctx_;
  HybridGrid grid_;
  std::unique_ptr<Communicator> group_comm_;  // the U ranks of this group, rank u
  std::unique_ptr<Communicator> ring_comm_;   // the R ranks with this u, rank g
  Communicator* subgroups_[2] = {nullptr, nullptr};
  // The all-to-alls inside the group and this rank's head tensors, holding the group's S/R tokens
  // (the ring's zigzag shard of group g) for this rank's q_u query and kv_u kv heads.
  std::unique_ptr<HeadExchange> exchange_;
  std::unique_ptr<Scheme> ring_;  // zigzag RingAttention over ring_comm_, on this rank's heads

  // One arena on the plan's device, carved once (see allocate_workspace): the ring's gradients.
  WorkspaceBuffer workspace_;
  void* dq_heads_ = nullptr;  // (B, S/R, q_u, D) storage: dQ from the ring
  void* dk_heads_ = nullptr;  // (B, S/R, kv_u, D) storage
  void* dv_heads_ = nullptr;  // (B, S/R, kv_u, D) storage
};

}  // namespace seqpar
