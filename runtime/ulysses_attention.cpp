// Ulysses attention: plan-time head split and all-to-all counts, forward and backward steps.
#include "runtime/ulysses_attention.hpp"

#include <algorithm>
#include <cstring>

#include "attention/dispatch.hpp"
#include "runtime/grid_copy.hpp"
#include "runtime/head_all_to_all.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> UlyssesAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(context.device == Device::kHost, StatusCode::kUnsupported,
                 scheme_name(context.kind), " on ", device_name(context.device),
                 " memory needs the CUDA block kernels, which this build does not have yet");
  const AttentionProblem& p = context.problem;
  const int ranks = context.layout.ranks();
  SEQPAR_ASSIGN_OR_RETURN(std::vector<HeadSlice> slices, split_heads(p.heads_q, p.heads_kv, ranks));
  std::unique_ptr<UlyssesAttention> scheme(new UlyssesAttention(context));
  scheme->slices_ = std::move(slices);
  scheme->mine_ = scheme->slices_[static_cast<size_t>(context.comm->rank())];
  scheme->local_seq_ = context.layout.local_seq();

  // Piece sizes per peer, from the piece layouts of forward() and backward().
  auto split_of = [&](PieceMix mix, PieceDirection direction) {
    return head_all_to_all_split(p, scheme->local_seq_, scheme->slices_, scheme->mine_, mix,
                                 direction);
  };
  const PieceMix qkv{1, 2, 0}, o_lse{1, 0, 1}, backward_in{2, 2, 2};
  SEQPAR_ASSIGN_OR_RETURN(scheme->forward_in_, split_of(qkv, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(scheme->forward_out_, split_of(o_lse, PieceDirection::kToTokens));
  SEQPAR_ASSIGN_OR_RETURN(scheme->backward_in_, split_of(backward_in, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(scheme->backward_out_, split_of(qkv, PieceDirection::kToTokens));
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

PieceParts UlyssesAttention::parts_of(const HeadSlice& slice) const {
  return piece_parts(ctx_.problem, local_seq_, slice);  // S_local tokens
}

BlockShape UlyssesAttention::block_shape() const {
  const AttentionProblem& p = ctx_.problem;
  return {p.batch, p.seq, p.seq, mine_.q_count, mine_.kv_count, p.head_dim};
}

Status UlyssesAttention::allocate_workspace() {
  const AttentionProblem& p = ctx_.problem;
  const size_t storage = dtype_size(p.dtype);
  const size_t q_elems = static_cast<size_t>(p.batch * p.seq * mine_.q_count * p.head_dim);
  const size_t kv_elems = static_cast<size_t>(p.batch * p.seq * mine_.kv_count * p.head_dim);
  const size_t stat_elems = static_cast<size_t>(p.batch * mine_.q_count * p.seq);
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
  arena.add(q_heads_, q_elems * storage);
  arena.add(k_heads_, kv_elems * storage);
  arena.add(v_heads_, kv_elems * storage);
  arena.add(dout_heads_, q_elems * storage);
  arena.add(acc_q_, q_elems * sizeof(float));
  arena.add(lse_heads_, stat_elems * sizeof(float));
  arena.add(delta_heads_, stat_elems * sizeof(float));
  arena.add(dkv_heads_, 2 * kv_elems * sizeof(float));
  arena.add(delta_local_, static_cast<size_t>(p.batch * p.heads_q * local_seq_) * sizeof(float));
  arena.add(dkv_total_, 2 * local_kv_elems * sizeof(float));
  arena.add(kernel_scratch_, block_kernel_scratch_bytes(block_shape(), {ctx_.device, ctx_.stream}));
  return arena.allocate(workspace_);
}

Status UlyssesAttention::all_to_all(const AllToAllSplit& split) {
  return ctx_.comm->all_to_all_v(send_, split.send_bytes, split.send_offsets, recv_,
                                 split.recv_bytes, split.recv_offsets);
}

Status UlyssesAttention::forward(const ForwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int ranks = ctx_.layout.ranks();
  const int64_t B = p.batch, S = p.seq, Sl = local_seq_, D = p.head_dim;
  const int64_t q_r = mine_.q_count, kv_r = mine_.kv_count;
  const PieceParts mine = parts_of(mine_);

  // Q, K, V of our tokens, cut by the destination's heads: piece (B, S_local, q_d | kv_d, D).
  for (int d = 0; d < ranks; ++d) {
    const HeadSlice& to = slices_[static_cast<size_t>(d)];
    const PieceParts parts = parts_of(to);
    char* piece = send_ + forward_in_.send_offsets[static_cast<size_t>(d)];
    copy_grid_rect({args.q, dt, {B, Sl, p.heads_q, D}}, {0, to.q_begin},
                   {piece, dt, {B, Sl, to.q_count, D}}, {0, 0}, Sl, to.q_count);
    piece += parts.q;
    for (const void* kv : {args.k, args.v}) {  // by position: K and V may be one buffer
      copy_grid_rect({kv, dt, {B, Sl, p.heads_kv, D}}, {0, to.kv_begin},
                     {piece, dt, {B, Sl, to.kv_count, D}}, {0, 0}, Sl, to.kv_count);
      piece += parts.kv;
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(forward_in_));
  // Source s's tokens are positions [s * S_local, (s + 1) * S_local) of the whole sequence.
  for (int s = 0; s < ranks; ++s) {
    const char* piece = recv_ + forward_in_.recv_offsets[static_cast<size_t>(s)];
    copy_grid_rect({piece, dt, {B, Sl, q_r, D}}, {0, 0}, {q_heads_, dt, {B, S, q_r, D}},
                   {s * Sl, 0}, Sl, q_r);
    piece += mine.q;
    for (void* kv_heads : {k_heads_, v_heads_}) {
      copy_grid_rect({piece, dt, {B, Sl, kv_r, D}}, {0, 0}, {kv_heads, dt, {B, S, kv_r, D}},
                     {s * Sl, 0}, Sl, kv_r);
      piece += mine.kv;
    }
  }

  BlockForwardParams block;
  block.shape = block_shape();
  block.dtype = dt;
  block.q = q_heads_;
  block.k = k_heads_;
  block.v = v_heads_;
  block.out = acc_q_;
  block.lse = lse_heads_;
  block.q_pos = PositionMap::affine(0, 1);
  block.k_pos = PositionMap::affine(0, 1);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.accumulate = false;
  block.scratch = kernel_scratch_;
  SEQPAR_RETURN_IF_ERROR(run_block_forward(block, {ctx_.device, ctx_.stream}));

  // O (rounded once to the storage dtype) and LSE of our heads, cut by the destination's tokens:
  // piece (B, S_local, q_r, D) storage, then (B, q_r, S_local) fp32.
  for (int d = 0; d < ranks; ++d) {
    char* piece = send_ + forward_out_.send_offsets[static_cast<size_t>(d)];
    copy_grid_rect({acc_q_, DType::kF32, {B, S, q_r, D}}, {d * Sl, 0}, {piece, dt, {B, Sl, q_r, D}},
                   {0, 0}, Sl, q_r);
    copy_grid_rect({lse_heads_, DType::kF32, {B, q_r, S, 1}}, {0, d * Sl},
                   {piece + mine.q, DType::kF32, {B, q_r, Sl, 1}}, {0, 0}, q_r, Sl);
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(forward_out_));
  for (int s = 0; s < ranks; ++s) {
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

Status UlyssesAttention::backward(const BackwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int ranks = ctx_.layout.ranks();
  const int64_t B = p.batch, S = p.seq, Sl = local_seq_, D = p.head_dim;
  const int64_t q_r = mine_.q_count, kv_r = mine_.kv_count;
  const PieceParts mine = parts_of(mine_);
  const KernelTarget target{ctx_.device, ctx_.stream};

  // delta (B, Hq, S_local) = rowsum(dO * O) of our tokens, all heads.
  SEQPAR_RETURN_IF_ERROR(
      run_attention_delta(args.out, args.dout, dt, B, Sl, p.heads_q, D, delta_local_, target));

  // Piece for destination d: Q, dO (B, S_local, q_d, D), K, V (B, S_local, kv_d, D) storage,
  // then LSE, delta (B, q_d, S_local) fp32.
  for (int d = 0; d < ranks; ++d) {
    const HeadSlice& to = slices_[static_cast<size_t>(d)];
    const PieceParts parts = parts_of(to);
    char* piece = send_ + backward_in_.send_offsets[static_cast<size_t>(d)];
    for (const void* q_like : {args.q, args.dout}) {
      copy_grid_rect({q_like, dt, {B, Sl, p.heads_q, D}}, {0, to.q_begin},
                     {piece, dt, {B, Sl, to.q_count, D}}, {0, 0}, Sl, to.q_count);
      piece += parts.q;
    }
    for (const void* kv : {args.k, args.v}) {
      copy_grid_rect({kv, dt, {B, Sl, p.heads_kv, D}}, {0, to.kv_begin},
                     {piece, dt, {B, Sl, to.kv_count, D}}, {0, 0}, Sl, to.kv_count);
      piece += parts.kv;
    }
    for (const float* stat : {args.lse, static_cast<const float*>(delta_local_)}) {
      copy_grid_rect({stat, DType::kF32, {B, p.heads_q, Sl, 1}}, {to.q_begin, 0},
                     {piece, DType::kF32, {B, to.q_count, Sl, 1}}, {0, 0}, to.q_count, Sl);
      piece += parts.stat;
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(backward_in_));
  for (int s = 0; s < ranks; ++s) {
    const char* piece = recv_ + backward_in_.recv_offsets[static_cast<size_t>(s)];
    for (void* q_like : {q_heads_, dout_heads_}) {
      copy_grid_rect({piece, dt, {B, Sl, q_r, D}}, {0, 0}, {q_like, dt, {B, S, q_r, D}},
                     {s * Sl, 0}, Sl, q_r);
      piece += mine.q;
    }
    for (void* kv_heads : {k_heads_, v_heads_}) {
      copy_grid_rect({piece, dt, {B, Sl, kv_r, D}}, {0, 0}, {kv_heads, dt, {B, S, kv_r, D}},
                     {s * Sl, 0}, Sl, kv_r);
      piece += mine.kv;
    }
    for (float* stat_heads : {lse_heads_, delta_heads_}) {
      copy_grid_rect({piece, DType::kF32, {B, q_r, Sl, 1}}, {0, 0},
                     {stat_heads, DType::kF32, {B, q_r, S, 1}}, {0, s * Sl}, q_r, Sl);
      piece += mine.stat;
    }
  }

  const size_t q_elems = static_cast<size_t>(B * S * q_r * D);
  const size_t kv_elems = static_cast<size_t>(B * S * kv_r * D);
  std::memset(acc_q_, 0, q_elems * sizeof(float));
  std::memset(dkv_heads_, 0, 2 * kv_elems * sizeof(float));
  BlockBackwardParams block;
  block.shape = block_shape();
  block.dtype = dt;
  block.q = q_heads_;
  block.k = k_heads_;
  block.v = v_heads_;
  block.dout = dout_heads_;
  block.lse = lse_heads_;
  block.delta = delta_heads_;
  block.dq = acc_q_;
  block.dk = dkv_heads_;
  block.dv = dkv_heads_ + kv_elems;
  block.q_pos = PositionMap::affine(0, 1);
  block.k_pos = PositionMap::affine(0, 1);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));

  // dQ, dK, dV of our heads, cut by the destination's tokens and rounded once to the storage
  // dtype: piece (B, S_local, q_r, D), then 2 x (B, S_local, kv_r, D).
  for (int d = 0; d < ranks; ++d) {
    char* piece = send_ + backward_out_.send_offsets[static_cast<size_t>(d)];
    copy_grid_rect({acc_q_, DType::kF32, {B, S, q_r, D}}, {d * Sl, 0}, {piece, dt, {B, Sl, q_r, D}},
                   {0, 0}, Sl, q_r);
    piece += mine.q;
    for (const float* grad : {dkv_heads_, dkv_heads_ + kv_elems}) {
      copy_grid_rect({grad, DType::kF32, {B, S, kv_r, D}}, {d * Sl, 0},
                     {piece, dt, {B, Sl, kv_r, D}}, {0, 0}, Sl, kv_r);
      piece += mine.kv;
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(backward_out_));
  // dQ heads arrive once each; dK, dV shares of a kv head several ranks shared are summed.
  const size_t local_kv_elems = static_cast<size_t>(B * Sl * p.heads_kv * D);
  std::memset(dkv_total_, 0, 2 * local_kv_elems * sizeof(float));
  for (int s = 0; s < ranks; ++s) {
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
