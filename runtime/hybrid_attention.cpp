// Hybrid attention: plan-time grid, communicators, head split and group exchange; forward and
// backward as group all-to-all -> zigzag ring across groups -> group all-to-all.
#include "runtime/hybrid_attention.hpp"

#include <vector>

#include "core/dtype.hpp"
#include "runtime/ring_attention.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> HybridAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(
      context.device == Device::kHost, StatusCode::kUnsupported, scheme_name(context.kind), " on ",
      device_name(context.device),
      " memory is not supported yet: the schemes' workspace and elementwise work follow the "
      "plan's device, but the communicators do not move device memory yet");
  SEQPAR_REQUIRE(context.layout.kind() == LayoutKind::kHybridZigzag, StatusCode::kInternal,
                 "hybrid needs the hybrid_zigzag layout, got ", layout_name(context.layout.kind()));
  std::unique_ptr<HybridAttention> scheme(new HybridAttention(context));
  const int ulysses = context.layout.ulysses_degree();
  scheme->grid_ = HybridGrid{ulysses, context.layout.ranks() / ulysses};
  const AttentionProblem& p = context.problem;
  SEQPAR_ASSIGN_OR_RETURN(std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, ulysses));
  SEQPAR_RETURN_IF_ERROR(scheme->split_communicators());
  // Place u of the group is rank u of group_comm_ (checked by split_communicators); it holds
  // run u of the group's S/R tokens.
  std::vector<int64_t> tokens;
  const int group_first = scheme->grid_.group_of(context.comm->rank()) * ulysses;
  for (int u = 0; u < ulysses; ++u) tokens.push_back(context.layout.local_seq(group_first + u));
  SEQPAR_ASSIGN_OR_RETURN(scheme->exchange_,
                          HeadExchange::create(p, *scheme->group_comm_, std::move(slices),
                                               std::move(tokens), BackwardCarry::kOut,
                                               {context.device, context.stream}, context.backward));
  SEQPAR_RETURN_IF_ERROR(scheme->create_ring());
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

Status HybridAttention::split_communicators() {
  Communicator& comm = *ctx_.comm;
  const int group = grid_.group_of(comm.rank());
  const int place = grid_.place_of(comm.rank());
  SEQPAR_ASSIGN_OR_RETURN(group_comm_, comm.split(group, place));  // ranks [g*U, (g+1)*U)
  SEQPAR_ASSIGN_OR_RETURN(ring_comm_, comm.split(place, group));   // ranks u, U + u, 2U + u, ...
  SEQPAR_REQUIRE(group_comm_->rank() == place && ring_comm_->rank() == group, StatusCode::kInternal,
                 "split placed rank ", comm.rank(), " at ", group_comm_->rank(),
                 " of its group and ", ring_comm_->rank(), " of its ring, not ", place, " and ",
                 group);
  subgroups_[0] = group_comm_.get();
  subgroups_[1] = ring_comm_.get();
  return Status::ok();
}

Status HybridAttention::create_ring() {
  AttentionProblem sliced = ctx_.problem;  // this rank's heads, the whole sequence
  sliced.heads_q = exchange_->mine().q_count;
  sliced.heads_kv = exchange_->mine().kv_count;
  SEQPAR_ASSIGN_OR_RETURN(Layout zigzag,
                          Layout::make(LayoutKind::kZigzag, ctx_.problem.seq, grid_.rings));
  const SchemeContext ring{sliced,      SchemeKind::kZigzag, zigzag, ring_comm_.get(),
                           ctx_.device, ctx_.stream,         0,      ctx_.backward};
  SEQPAR_ASSIGN_OR_RETURN(ring_, RingAttention::create(ring));
  return Status::ok();
}

size_t HybridAttention::workspace_bytes() const {
  return workspace_.bytes() + exchange_->workspace_bytes() + ring_->workspace_bytes();
}

Status HybridAttention::allocate_workspace() {
  const AttentionProblem& p = ctx_.problem;
  const size_t storage = dtype_size(p.dtype);
  const size_t rows = static_cast<size_t>(p.batch * exchange_->heads_seq());  // B * S/R
  const HeadSlice& mine = exchange_->mine();
  const size_t bwd = ctx_.backward ? 1 : 0;  // a forward-only plan has no gradient heads
  WorkspaceArena arena;
  arena.add(dq_heads_, bwd * rows * static_cast<size_t>(mine.q_count * p.head_dim) * storage);
  for (void** kv_like : {&dk_heads_, &dv_heads_})
    arena.add(*kv_like, bwd * rows * static_cast<size_t>(mine.kv_count * p.head_dim) * storage);
  return arena.allocate(workspace_, ctx_.device);
}

Status HybridAttention::forward(const ForwardArgs& args) {
  HeadExchange& x = *exchange_;
  SEQPAR_RETURN_IF_ERROR(x.forward_in(args));
  SEQPAR_RETURN_IF_ERROR(
      ring_->forward({x.q_heads(), x.k_heads(), x.v_heads(), x.out_heads(), x.lse_heads()}));
  return x.forward_out(x.out_heads(), ctx_.problem.dtype, args);
}

Status HybridAttention::backward(const BackwardArgs& args) {
  HeadExchange& x = *exchange_;
  // O goes out instead of delta: the ring computes delta = rowsum(dO * O) itself.
  SEQPAR_RETURN_IF_ERROR(x.backward_in(args, nullptr));
  SEQPAR_RETURN_IF_ERROR(
      ring_->backward({x.q_heads(), x.k_heads(), x.v_heads(), x.out_heads(), x.lse_heads(),
                       x.dout_heads(), dq_heads_, dk_heads_, dv_heads_}));
  return x.backward_out(dq_heads_, dk_heads_, dv_heads_, ctx_.problem.dtype, args);
}

}  // namespace seqpar
