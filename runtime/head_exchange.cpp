// HeadExchange: plan-time splits and arena; packing, all-to-alls and unpacking of each step.
#include "runtime/head_exchange.hpp"

#include <algorithm>

#include "core/dtype.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<HeadExchange>> HeadExchange::create(
    const AttentionProblem& p, Communicator& comm, std::vector<HeadSlice> slices,
    std::vector<int64_t> tokens, BackwardCarry carry, const KernelTarget& target, bool backward) {
  SEQPAR_REQUIRE(
      slices.size() == static_cast<size_t>(comm.size()) && tokens.size() == slices.size(),
      StatusCode::kInternal, "head exchange over ", comm.size(), " ranks got ", slices.size(),
      " head slices and ", tokens.size(), " token counts");
  std::unique_ptr<HeadExchange> exchange(new HeadExchange(p, comm, target));
  SEQPAR_RETURN_IF_ERROR(exchange->plan(std::move(slices), std::move(tokens), carry));
  SEQPAR_RETURN_IF_ERROR(exchange->allocate_workspace(backward));
  return exchange;
}

Status HeadExchange::plan(std::vector<HeadSlice> slices, std::vector<int64_t> tokens,
                          BackwardCarry carry) {
  slices_ = std::move(slices);
  mine_ = slices_[static_cast<size_t>(comm_.rank())];
  tokens_ = std::move(tokens);
  token_begin_.assign(tokens_.size(), 0);
  heads_seq_ = 0;
  for (size_t s = 0; s < tokens_.size(); ++s) {
    token_begin_[s] = heads_seq_;
    heads_seq_ += tokens_[s];
  }
  carry_ = carry;
  // Piece sizes per peer, from the piece layouts of the steps below.
  auto split_of = [&](PieceMix mix, PieceDirection direction) {
    return head_all_to_all_split(p_, tokens_, slices_, comm_.rank(), mix, direction);
  };
  const PieceMix qkv{1, 2, 0}, o_lse{1, 0, 1};
  const PieceMix backward_in =
      carry == BackwardCarry::kDelta ? PieceMix{2, 2, 2} : PieceMix{3, 2, 1};
  SEQPAR_ASSIGN_OR_RETURN(forward_in_, split_of(qkv, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(forward_out_, split_of(o_lse, PieceDirection::kToTokens));
  SEQPAR_ASSIGN_OR_RETURN(backward_in_, split_of(backward_in, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(backward_out_, split_of(qkv, PieceDirection::kToTokens));
  return Status::ok();
}

Status HeadExchange::allocate_workspace(bool backward) {
  const size_t storage = dtype_size(p_.dtype);
  const size_t rows = static_cast<size_t>(p_.batch * heads_seq_);  // B * S_h
  const size_t q_bytes = rows * static_cast<size_t>(mine_.q_count * p_.head_dim) * storage;
  const size_t kv_bytes = rows * static_cast<size_t>(mine_.kv_count * p_.head_dim) * storage;
  const size_t stat_bytes = rows * static_cast<size_t>(mine_.q_count) * sizeof(float);
  const size_t local_kv_elems =
      static_cast<size_t>(p_.batch * tokens_of(comm_.rank()) * p_.heads_kv * p_.head_dim);
  const bool sends_delta = carry_ == BackwardCarry::kDelta;
  size_t send_bytes = 0;
  size_t recv_bytes = 0;
  for (const AllToAllSplit* split : {&forward_in_, &forward_out_, &backward_in_, &backward_out_}) {
    if (!backward && (split == &backward_in_ || split == &backward_out_)) continue;
    send_bytes = std::max(send_bytes, split->send_total());
    recv_bytes = std::max(recv_bytes, split->recv_total());
  }
  // Regions only backward uses are empty in a forward-only exchange.
  WorkspaceArena arena;
  arena.add(send_, send_bytes);
  arena.add(recv_, recv_bytes);
  arena.add(q_heads_, q_bytes);
  arena.add(k_heads_, kv_bytes);
  arena.add(v_heads_, kv_bytes);
  arena.add(dout_heads_, backward ? q_bytes : 0);
  arena.add(out_heads_, sends_delta ? 0 : q_bytes);
  arena.add(lse_heads_, stat_bytes);
  arena.add(delta_heads_, sends_delta && backward ? stat_bytes : 0);
  arena.add(dkv_total_, backward ? 2 * local_kv_elems * sizeof(float) : 0);
  return arena.allocate(workspace_, target_.device);
}

Status HeadExchange::all_to_all(const AllToAllSplit& split) {
  return comm_.all_to_all_v(send_, split.send_bytes, split.send_offsets, recv_, split.recv_bytes,
                            split.recv_offsets);
}

Status HeadExchange::to_heads(const AllToAllSplit& split, std::span<const void* const> q_like,
                              std::span<const void* const> kv, std::span<const float* const> stats,
                              std::span<void* const> q_heads, std::span<void* const> kv_heads,
                              std::span<float* const> stat_heads) {
  const DType dt = p_.dtype;
  const int64_t B = p_.batch, Sh = heads_seq_, T = tokens_of(comm_.rank()), D = p_.head_dim;
  const int64_t q_r = mine_.q_count, kv_r = mine_.kv_count;
  const int peers = static_cast<int>(slices_.size());
  // Piece for peer d: q-like (B, T, q_d, D), kv (B, T, kv_d, D) storage, stats (B, q_d, T) fp32.
  for (int d = 0; d < peers; ++d) {
    const HeadSlice& to = slices_[static_cast<size_t>(d)];
    const PieceParts parts = piece_parts(p_, T, to);
    char* piece = send_ + split.send_offsets[static_cast<size_t>(d)];
    for (const void* src : q_like) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
          {src, dt, {B, T, p_.heads_q, D}}, {0, to.q_begin}, {piece, dt, {B, T, to.q_count, D}},
          {0, 0}, T, to.q_count, target_));
      piece += parts.q;
    }
    for (const void* src : kv) {  // by position: K and V may be one buffer
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
          {src, dt, {B, T, p_.heads_kv, D}}, {0, to.kv_begin}, {piece, dt, {B, T, to.kv_count, D}},
          {0, 0}, T, to.kv_count, target_));
      piece += parts.kv;
    }
    for (const float* src : stats) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
          {src, DType::kF32, {B, p_.heads_q, T, 1}}, {to.q_begin, 0},
          {piece, DType::kF32, {B, to.q_count, T, 1}}, {0, 0}, to.q_count, T, target_));
      piece += parts.stat;
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_to_all(split));
  // Peer s's T_s tokens are indices [begin_s, begin_s + T_s) of the S_h tokens.
  for (int s = 0; s < peers; ++s) {
    const char* piece = recv_ + split.recv_offsets[static_cast<size_t>(s)];
    const int64_t Ts = tokens_of(s), at = begin_of(s);
    const PieceParts mine = piece_parts(p_, Ts, mine_);
    for (void* dst : q_heads) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({piece, dt, {B, Ts, q_r, D}}, {0, 0},
                                                        {dst, dt, {B, Sh, q_r, D}}, {at, 0}, Ts,
                                                        q_r, target_));
      piece += mine.q;
    }
    for (void* dst : kv_heads) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({piece, dt, {B, Ts, kv_r, D}}, {0, 0},
                                                        {dst, dt, {B, Sh, kv_r, D}}, {at, 0}, Ts,
                                                        kv_r, target_));
      piece += mine.kv;
    }
    for (float* dst : stat_heads) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({piece, DType::kF32, {B, q_r, Ts, 1}},
                                                        {0, 0}, {dst, DType::kF32, {B, q_r, Sh, 1}},
                                                        {0, at}, q_r, Ts, target_));
      piece += mine.stat;
    }
  }
  return Status::ok();
}

Status HeadExchange::to_tokens(const AllToAllSplit& split, DType dtype,
                               std::span<const void* const> q_like, std::span<const void* const> kv,
                               std::span<const float* const> stats) {
  const DType dt = p_.dtype;
  const int64_t B = p_.batch, Sh = heads_seq_, D = p_.head_dim;
  const int64_t q_r = mine_.q_count, kv_r = mine_.kv_count;
  // Piece for peer d: q-like (B, T_d, q_r, D), kv (B, T_d, kv_r, D) storage, stats
  // (B, q_r, T_d) fp32.
  for (int d = 0; d < static_cast<int>(slices_.size()); ++d) {
    char* piece = send_ + split.send_offsets[static_cast<size_t>(d)];
    const int64_t Td = tokens_of(d), at = begin_of(d);
    const PieceParts mine = piece_parts(p_, Td, mine_);
    for (const void* src : q_like) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({src, dtype, {B, Sh, q_r, D}}, {at, 0},
                                                        {piece, dt, {B, Td, q_r, D}}, {0, 0}, Td,
                                                        q_r, target_));
      piece += mine.q;
    }
    for (const void* src : kv) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({src, dtype, {B, Sh, kv_r, D}}, {at, 0},
                                                        {piece, dt, {B, Td, kv_r, D}}, {0, 0}, Td,
                                                        kv_r, target_));
      piece += mine.kv;
    }
    for (const float* src : stats) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
          {src, DType::kF32, {B, q_r, Sh, 1}}, {0, at}, {piece, DType::kF32, {B, q_r, Td, 1}},
          {0, 0}, q_r, Td, target_));
      piece += mine.stat;
    }
  }
  return all_to_all(split);
}

Status HeadExchange::forward_in(const ForwardArgs& args) {
  const void* const q_like[] = {args.q};
  const void* const kv[] = {args.k, args.v};
  void* const q_heads[] = {q_heads_};
  void* const kv_heads[] = {k_heads_, v_heads_};
  return to_heads(forward_in_, q_like, kv, {}, q_heads, kv_heads, {});
}

Status HeadExchange::forward_out(const void* o_heads, DType o_dtype, const ForwardArgs& args) {
  const void* const q_like[] = {o_heads};
  const float* const stats[] = {lse_heads_};
  SEQPAR_RETURN_IF_ERROR(to_tokens(forward_out_, o_dtype, q_like, {}, stats));
  const DType dt = p_.dtype;
  const int64_t B = p_.batch, T = tokens_of(comm_.rank()), D = p_.head_dim;
  for (int s = 0; s < static_cast<int>(slices_.size()); ++s) {
    const HeadSlice& from = slices_[static_cast<size_t>(s)];
    const char* piece = recv_ + forward_out_.recv_offsets[static_cast<size_t>(s)];
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({piece, dt, {B, T, from.q_count, D}}, {0, 0},
                                                      {args.out, dt, {B, T, p_.heads_q, D}},
                                                      {0, from.q_begin}, T, from.q_count, target_));
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
        {piece + piece_parts(p_, T, from).q, DType::kF32, {B, from.q_count, T, 1}}, {0, 0},
        {args.lse, DType::kF32, {B, p_.heads_q, T, 1}}, {from.q_begin, 0}, from.q_count, T,
        target_));
  }
  return Status::ok();
}

Status HeadExchange::backward_in(const BackwardArgs& args, const float* delta) {
  const void* const kv[] = {args.k, args.v};
  void* const kv_heads[] = {k_heads_, v_heads_};
  if (carry_ == BackwardCarry::kDelta) {
    const void* const q_like[] = {args.q, args.dout};
    const float* const stats[] = {args.lse, delta};
    void* const q_heads[] = {q_heads_, dout_heads_};
    float* const stat_heads[] = {lse_heads_, delta_heads_};
    return to_heads(backward_in_, q_like, kv, stats, q_heads, kv_heads, stat_heads);
  }
  const void* const q_like[] = {args.q, args.dout, args.out};
  const float* const stats[] = {args.lse};
  void* const q_heads[] = {q_heads_, dout_heads_, out_heads_};
  float* const stat_heads[] = {lse_heads_};
  return to_heads(backward_in_, q_like, kv, stats, q_heads, kv_heads, stat_heads);
}

Status HeadExchange::backward_out(const void* dq_heads, const void* dk_heads, const void* dv_heads,
                                  DType grad_dtype, const BackwardArgs& args) {
  const void* const q_like[] = {dq_heads};
  const void* const kv[] = {dk_heads, dv_heads};
  SEQPAR_RETURN_IF_ERROR(to_tokens(backward_out_, grad_dtype, q_like, kv, {}));
  const DType dt = p_.dtype;
  const int64_t B = p_.batch, T = tokens_of(comm_.rank()), D = p_.head_dim;
  // dQ heads arrive once each; dK, dV shares of a kv head several peers shared are summed.
  const size_t local_kv_elems = static_cast<size_t>(B * T * p_.heads_kv * D);
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(dkv_total_, 2 * local_kv_elems * sizeof(float), target_));
  for (int s = 0; s < static_cast<int>(slices_.size()); ++s) {
    const HeadSlice& from = slices_[static_cast<size_t>(s)];
    const PieceParts parts = piece_parts(p_, T, from);
    const char* piece = recv_ + backward_out_.recv_offsets[static_cast<size_t>(s)];
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({piece, dt, {B, T, from.q_count, D}}, {0, 0},
                                                      {args.dq, dt, {B, T, p_.heads_q, D}},
                                                      {0, from.q_begin}, T, from.q_count, target_));
    piece += parts.q;
    for (float* total : {dkv_total_, dkv_total_ + local_kv_elems}) {
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::add_grid_rect({piece, dt, {B, T, from.kv_count, D}}, {0, 0},
                                    {total, DType::kF32, {B, T, p_.heads_kv, D}},
                                    {0, from.kv_begin}, T, from.kv_count, target_));
      piece += parts.kv;
    }
  }
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(dkv_total_, args.dk, dt, local_kv_elems, target_));
  return buffer_ops::convert_from_float(dkv_total_ + local_kv_elems, args.dv, dt, local_kv_elems,
                                        target_);
}

}  // namespace seqpar
