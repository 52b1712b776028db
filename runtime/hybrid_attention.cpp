// Hybrid attention: plan-time grid, communicators, head split and all-to-all counts; forward
// and backward as group all-to-all -> zigzag ring across groups -> group all-to-all.
#include "runtime/hybrid_attention.hpp"

#include <algorithm>
#include <cstring>

#include "core/dtype.hpp"
#include "runtime/grid_copy.hpp"
#include "runtime/head_all_to_all.hpp"
#include "runtime/ring_attention.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> HybridAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(context.device == Device::kHost, StatusCode::kUnsupported,
                 scheme_name(context.kind), " on ", device_name(context.device),
                 " memory needs the CUDA block kernels, which this build does not have yet");
  SEQPAR_REQUIRE(context.layout.kind() == LayoutKind::kHybridZigzag, StatusCode::kInternal,
                 "hybrid needs the hybrid_zigzag layout, got ", layout_name(context.layout.kind()));
  std::unique_ptr<HybridAttention> scheme(new HybridAttention(context));
  const int ulysses = context.layout.ulysses_degree();
  scheme->grid_ = HybridGrid{ulysses, context.layout.ranks() / ulysses};
  scheme->local_seq_ = context.layout.local_seq();
  scheme->group_seq_ = context.layout.seq() / scheme->grid_.rings;
  const AttentionProblem& p = context.problem;
  SEQPAR_ASSIGN_OR_RETURN(scheme->slices_, split_heads(p.heads_q, p.heads_kv, ulysses));
  scheme->mine_ =
      scheme->slices_[static_cast<size_t>(scheme->grid_.place_of(context.comm->rank()))];
  SEQPAR_RETURN_IF_ERROR(scheme->split_communicators());
  SEQPAR_RETURN_IF_ERROR(scheme->plan_all_to_alls());
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

PieceParts HybridAttention::parts_of(const HeadSlice& slice) const {
  return piece_parts(ctx_.problem, local_seq_, slice);  // S/P tokens
}

Status HybridAttention::plan_all_to_alls() {
  // Piece sizes per peer, from the piece layouts of forward() and backward().
  auto split_of = [&](PieceMix mix, PieceDirection direction) {
    return head_all_to_all_split(ctx_.problem, local_seq_, slices_, mine_, mix, direction);
  };
  const PieceMix qkv{1, 2, 0}, o_lse{1, 0, 1}, backward_in{3, 2, 1};
  SEQPAR_ASSIGN_OR_RETURN(forward_in_, split_of(qkv, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(forward_out_, split_of(o_lse, PieceDirection::kToTokens));
  SEQPAR_ASSIGN_OR_RETURN(backward_in_, split_of(backward_in, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(backward_out_, split_of(qkv, PieceDirection::kToTokens));
  return Status::ok();
}

Status HybridAttention::create_ring() {
  AttentionProblem sliced = ctx_.problem;  // this rank's heads, the whole sequence
  sliced.heads_q = mine_.q_count;
  sliced.heads_kv = mine_.kv_count;
  SEQPAR_ASSIGN_OR_RETURN(Layout zigzag,
                          Layout::make(LayoutKind::kZigzag, ctx_.problem.seq, grid_.rings));
  const SchemeContext ring{sliced,      SchemeKind::kZigzag, zigzag, ring_comm_.get(),
                           ctx_.device, ctx_.stream,         0};
  SEQPAR_ASSIGN_OR_RETURN(ring_, RingAttention::create(ring));
  return Status::ok();
}

size_t HybridAttention::workspace_bytes() const {
  return workspace_.bytes() + ring_->workspace_bytes();
}

Status HybridAttention::allocate_workspace() {
  const AttentionProblem& p = ctx_.problem;
  const size_t storage = dtype_size(p.dtype);
  const size_t rows = static_cast<size_t>(p.batch * group_seq_);  // B * S/R
  const size_t q_bytes = rows * static_cast<size_t>(mine_.q_count * p.head_dim) * storage;
  const size_t kv_bytes = rows * static_cast<size_t>(mine_.kv_count * p.head_dim) * storage;
  const size_t local_kv_elems = static_cast<size_t>(p.batch * local_seq_ * p.heads_kv * p.head_dim);
  size_t send_bytes = 0;
  size_t recv_bytes = 0;
  for (const AllToAllSplit* split : {&forward_in_, &forward_out_, &backward_in_, &backward_out_}) {
    send_bytes = std::max(send_bytes, split->send_total());
    recv_bytes = std::max(recv_bytes, split->recv_total());
  }
  WorkspaceArena arena;
  arena.add(send_, send_bytes);
  arena.add(recv_, recv_bytes);
  for (void** q_like : {&q_heads_, &out_heads_, &dout_heads_, &dq_heads_})
    arena.add(*q_like, q_bytes);
  for (void** kv_like : {&k_heads_, &v_heads_, &dk_heads_, &dv_heads_})
    arena.add(*kv_like, kv_bytes);
  arena.add(lse_heads_, rows * static_cast<size_t>(mine_.q_count) * sizeof(float));
  arena.add(dkv_total_, 2 * local_kv_elems * sizeof(float));
  return arena.allocate(workspace_);
}

Status HybridAttention::all_to_all(const AllToAllSplit& split) {
  return group_comm_->all_to_all_v(send_, split.send_bytes, split.send_offsets, recv_,
                                   split.recv_bytes, split.recv_offsets);
}

Status HybridAttention::forward(const ForwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int64_t B = p.batch, Sg = group_seq_, Sl = local_seq_, D = p.head_dim;
  const int64_t q_u = mine_.q_count, kv_u = mine_.kv_count;
  const PieceParts mine = parts_of(mine_);

  // Q, K, V of our tokens, cut by the destination's heads: piece (B, S/P, q_d | kv_d, D).
  for (int d = 0; d < grid_.ulysses; ++d) {
    const HeadSlice& to = slices_[static_cast<size_t>(d)];
    char* piece = send_ + forward_in_.send_offsets[static_cast<size_t>(d)];
    copy_grid_rect({args.q, dt, {B, Sl, p.heads_q, D}}, {0, to.q_begin},
                   {piece, dt, {B, Sl, to.q_count, D}}, {0, 0}, Sl, to.q_count);
    piece += parts_of(to).q;
    for (const void* kv : {args.k, args.v}) {
      copy_grid_rect({kv, dt, {B, Sl, p.heads_kv, D}}, {0, to.kv_begin},
                     {piece, dt, {B, Sl, to.kv_count, D}}, {0, 0}, Sl, to.kv_count);
      piece += parts_of(to).kv;
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(forward_in_));
  // Place s's tokens are indices [s * S/P, (s + 1) * S/P) of the group's zigzag shard.
  for (int s = 0; s < grid_.ulysses; ++s) {
    const char* piece = recv_ + forward_in_.recv_offsets[static_cast<size_t>(s)];
    copy_grid_rect({piece, dt, {B, Sl, q_u, D}}, {0, 0}, {q_heads_, dt, {B, Sg, q_u, D}},
                   {s * Sl, 0}, Sl, q_u);
    piece += mine.q;
    for (void* kv_heads : {k_heads_, v_heads_}) {
      copy_grid_rect({piece, dt, {B, Sl, kv_u, D}}, {0, 0}, {kv_heads, dt, {B, Sg, kv_u, D}},
                     {s * Sl, 0}, Sl, kv_u);
      piece += mine.kv;
    }
  }

  SEQPAR_RETURN_IF_ERROR(ring_->forward({q_heads_, k_heads_, v_heads_, out_heads_, lse_heads_}));

  // O and LSE of our heads, cut by the destination's tokens: piece (B, S/P, q_u, D) storage,
  // then (B, q_u, S/P) fp32.
  for (int d = 0; d < grid_.ulysses; ++d) {
    char* piece = send_ + forward_out_.send_offsets[static_cast<size_t>(d)];
    copy_grid_rect({out_heads_, dt, {B, Sg, q_u, D}}, {d * Sl, 0}, {piece, dt, {B, Sl, q_u, D}},
                   {0, 0}, Sl, q_u);
    copy_grid_rect({lse_heads_, DType::kF32, {B, q_u, Sg, 1}}, {0, d * Sl},
                   {piece + mine.q, DType::kF32, {B, q_u, Sl, 1}}, {0, 0}, q_u, Sl);
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(forward_out_));
  for (int s = 0; s < grid_.ulysses; ++s) {
    const HeadSlice& from = slices_[static_cast<size_t>(s)];
    const char* piece = recv_ + forward_out_.recv_offsets[static_cast<size_t>(s)];
    copy_grid_rect({piece, dt, {B, Sl, from.q_count, D}}, {0, 0},
                   {args.out, dt, {B, Sl, p.heads_q, D}}, {0, from.q_begin}, Sl, from.q_count);
    copy_grid_rect({piece + parts_of(from).q, DType::kF32, {B, from.q_count, Sl, 1}}, {0, 0},
                   {args.lse, DType::kF32, {B, p.heads_q, Sl, 1}}, {from.q_begin, 0}, from.q_count,
                   Sl);
  }
  return Status::ok();
}

Status HybridAttention::backward(const BackwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int64_t B = p.batch, Sg = group_seq_, Sl = local_seq_, D = p.head_dim;
  const int64_t q_u = mine_.q_count, kv_u = mine_.kv_count;
  const PieceParts mine = parts_of(mine_);

  // Piece for destination d: Q, dO, O (B, S/P, q_d, D), K, V (B, S/P, kv_d, D) storage, then
  // LSE (B, q_d, S/P) fp32.
  for (int d = 0; d < grid_.ulysses; ++d) {
    const HeadSlice& to = slices_[static_cast<size_t>(d)];
    const PieceParts parts = parts_of(to);
    char* piece = send_ + backward_in_.send_offsets[static_cast<size_t>(d)];
    for (const void* q_like : {args.q, args.dout, args.out}) {
      copy_grid_rect({q_like, dt, {B, Sl, p.heads_q, D}}, {0, to.q_begin},
                     {piece, dt, {B, Sl, to.q_count, D}}, {0, 0}, Sl, to.q_count);
      piece += parts.q;
    }
    for (const void* kv : {args.k, args.v}) {
      copy_grid_rect({kv, dt, {B, Sl, p.heads_kv, D}}, {0, to.kv_begin},
                     {piece, dt, {B, Sl, to.kv_count, D}}, {0, 0}, Sl, to.kv_count);
      piece += parts.kv;
    }
    copy_grid_rect({args.lse, DType::kF32, {B, p.heads_q, Sl, 1}}, {to.q_begin, 0},
                   {piece, DType::kF32, {B, to.q_count, Sl, 1}}, {0, 0}, to.q_count, Sl);
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(backward_in_));
  for (int s = 0; s < grid_.ulysses; ++s) {
    const char* piece = recv_ + backward_in_.recv_offsets[static_cast<size_t>(s)];
    for (void* q_like : {q_heads_, dout_heads_, out_heads_}) {
      copy_grid_rect({piece, dt, {B, Sl, q_u, D}}, {0, 0}, {q_like, dt, {B, Sg, q_u, D}},
                     {s * Sl, 0}, Sl, q_u);
      piece += mine.q;
    }
    for (void* kv_heads : {k_heads_, v_heads_}) {
      copy_grid_rect({piece, dt, {B, Sl, kv_u, D}}, {0, 0}, {kv_heads, dt, {B, Sg, kv_u, D}},
                     {s * Sl, 0}, Sl, kv_u);
      piece += mine.kv;
    }
    copy_grid_rect({piece, DType::kF32, {B, q_u, Sl, 1}}, {0, 0},
                   {lse_heads_, DType::kF32, {B, q_u, Sg, 1}}, {0, s * Sl}, q_u, Sl);
  }

  SEQPAR_RETURN_IF_ERROR(ring_->backward({q_heads_, k_heads_, v_heads_, out_heads_, lse_heads_,
                                          dout_heads_, dq_heads_, dk_heads_, dv_heads_}));

  // dQ, dK, dV of our heads, cut by the destination's tokens: piece (B, S/P, q_u, D), then
  // 2 x (B, S/P, kv_u, D), storage.
  for (int d = 0; d < grid_.ulysses; ++d) {
    char* piece = send_ + backward_out_.send_offsets[static_cast<size_t>(d)];
    copy_grid_rect({dq_heads_, dt, {B, Sg, q_u, D}}, {d * Sl, 0}, {piece, dt, {B, Sl, q_u, D}},
                   {0, 0}, Sl, q_u);
    piece += mine.q;
    for (const void* grad : {dk_heads_, dv_heads_}) {
      copy_grid_rect({grad, dt, {B, Sg, kv_u, D}}, {d * Sl, 0}, {piece, dt, {B, Sl, kv_u, D}},
                     {0, 0}, Sl, kv_u);
      piece += mine.kv;
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(backward_out_));
  // dQ heads arrive once each; dK, dV shares of a kv head several places shared are summed.
  const size_t local_kv_elems = static_cast<size_t>(B * Sl * p.heads_kv * D);
  std::memset(dkv_total_, 0, 2 * local_kv_elems * sizeof(float));
  for (int s = 0; s < grid_.ulysses; ++s) {
    const HeadSlice& from = slices_[static_cast<size_t>(s)];
    const PieceParts parts = parts_of(from);
    const char* piece = recv_ + backward_out_.recv_offsets[static_cast<size_t>(s)];
    copy_grid_rect({piece, dt, {B, Sl, from.q_count, D}}, {0, 0},
                   {args.dq, dt, {B, Sl, p.heads_q, D}}, {0, from.q_begin}, Sl, from.q_count);
    piece += parts.q;
    for (float* total : {dkv_total_, dkv_total_ + local_kv_elems}) {
      add_grid_rect({piece, dt, {B, Sl, from.kv_count, D}}, {0, 0},
                    {total, DType::kF32, {B, Sl, p.heads_kv, D}}, {0, from.kv_begin}, Sl,
                    from.kv_count);
      piece += parts.kv;
    }
  }
  convert_from_float(dkv_total_, args.dk, dt, local_kv_elems);
  convert_from_float(dkv_total_ + local_kv_elems, args.dv, dt, local_kv_elems);
  return Status::ok();
}

}  // namespace seqpar
