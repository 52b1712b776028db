// HeadExchange: plan-time splits and arena; packing, all-to-alls and unpacking of each step.
#include "runtime/head_exchange.hpp"

#include <algorithm>

#include "core/dtype.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

namespace {

int64_t sum_of(std::span<const int64_t> tokens) {
  int64_t total = 0;
  for (const int64_t t : tokens) total += t;
  return total;
}

}  // namespace

// The arena's regions, in the order they are carved: the largest send and receive of the
// all-to-alls a plan runs (a forward-only plan runs the forward two), and the head tensors of
// this rank's slice over the S_h tokens. Regions only backward uses are empty in a forward-only
// exchange.
void HeadExchange::add_regions(WorkspaceArena& arena, Buffers& b, const AttentionProblem& p,
                               const HeadExchangeSplits& splits, const HeadSlice& mine,
                               int64_t my_tokens, int64_t heads_seq, BackwardCarry carry,
                               bool backward) {
  const size_t storage = dtype_size(p.dtype);
  const size_t rows = static_cast<size_t>(p.batch * heads_seq);  // B * S_h
  const size_t q_bytes = rows * static_cast<size_t>(mine.q_count * p.head_dim) * storage;
  const size_t kv_bytes = rows * static_cast<size_t>(mine.kv_count * p.head_dim) * storage;
  const size_t stat_bytes = rows * static_cast<size_t>(mine.q_count) * sizeof(float);
  const size_t local_kv_elems = static_cast<size_t>(p.batch * my_tokens * p.heads_kv * p.head_dim);
  const bool sends_delta = carry == BackwardCarry::kDelta;
  size_t send_bytes = 0;
  size_t recv_bytes = 0;
  for (const AllToAllSplit* split :
       {&splits.forward_in, &splits.forward_out, &splits.backward_in, &splits.backward_out}) {
    if (!backward && (split == &splits.backward_in || split == &splits.backward_out)) continue;
    send_bytes = std::max(send_bytes, split->send_total());
    recv_bytes = std::max(recv_bytes, split->recv_total());
  }
  arena.add(b.send, send_bytes);
  arena.add(b.recv, recv_bytes);
  arena.add(b.q_heads, q_bytes);
  arena.add(b.k_heads, kv_bytes);
  arena.add(b.v_heads, kv_bytes);
  arena.add(b.dout_heads, backward ? q_bytes : 0);
  arena.add(b.out_heads, sends_delta ? 0 : q_bytes);
  arena.add(b.lse_heads, stat_bytes);
  arena.add(b.delta_heads, sends_delta && backward ? stat_bytes : 0);
  arena.add(b.dkv_total, backward ? 2 * local_kv_elems * sizeof(float) : 0);
}

StatusOr<HeadExchangeSplits> HeadExchangeSplits::of(const AttentionProblem& p,
                                                    std::span<const int64_t> tokens,
                                                    std::span<const HeadSlice> slices, int me,
                                                    BackwardCarry carry) {
  auto split_of = [&](PieceMix mix, PieceDirection direction) {
    return head_all_to_all_split(p, tokens, slices, me, mix, direction);
  };
  const PieceMix qkv{1, 2, 0}, o_lse{1, 0, 1};
  const PieceMix backward_in =
      carry == BackwardCarry::kDelta ? PieceMix{2, 2, 2} : PieceMix{3, 2, 1};
  HeadExchangeSplits s;
  SEQPAR_ASSIGN_OR_RETURN(s.forward_in, split_of(qkv, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(s.forward_out, split_of(o_lse, PieceDirection::kToTokens));
  SEQPAR_ASSIGN_OR_RETURN(s.backward_in, split_of(backward_in, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(s.backward_out, split_of(qkv, PieceDirection::kToTokens));
  return s;
}

void HeadExchangeSplits::schedule_step(std::span<const HeadExchangeSplits> splits,
                                       std::span<const RankGroup> groups,
                                       AllToAllSplit HeadExchangeSplits::*stage,
                                       ScheduleSink& out) {
  out.step(StepOverlap::kSerial);
  std::vector<Send> sends;
  for (size_t r = 0; r < splits.size(); ++r) {
    const RankGroup& group = groups[r];
    const AllToAllSplit& split = splits[r].*stage;
    sends.clear();
    for (int u = 0; u < group.count; ++u) {
      if (group.at(u) != static_cast<int>(r))
        sends.push_back({group.at(u), static_cast<int64_t>(split.send_bytes[u])});
    }
    out.all_to_all(static_cast<int>(r), group, sends);
  }
}

StatusOr<size_t> HeadExchange::workspace_bytes_for(const AttentionProblem& p,
                                                   std::span<const HeadSlice> slices,
                                                   std::span<const int64_t> tokens, int me,
                                                   BackwardCarry carry, bool backward) {
  SEQPAR_ASSIGN_OR_RETURN(const HeadExchangeSplits splits,
                          HeadExchangeSplits::of(p, tokens, slices, me, carry));
  Buffers unused;
  WorkspaceArena arena;
  add_regions(arena, unused, p, splits, slices[static_cast<size_t>(me)],
              tokens[static_cast<size_t>(me)], sum_of(tokens), carry, backward);
  return arena.bytes();
}

StatusOr<std::unique_ptr<HeadExchange>> HeadExchange::create(
    const AttentionProblem& p, Communicator& comm, std::vector<HeadSlice> slices,
    std::vector<int64_t> tokens, BackwardCarry carry, const KernelTarget& target, bool backward) {
  SEQPAR_REQUIRE(
      slices.size() == static_cast<size_t>(comm.size()) && tokens.size() == slices.size(),
      StatusCode::kInternal, "head exchange over ", comm.size(), " ranks got ", slices.size(),
      " head slices and ", tokens.size(), " token counts");
  std::unique_ptr<HeadExchange> x(new HeadExchange(p, comm, target));
  SEQPAR_RETURN_IF_ERROR(x->plan(std::move(slices), std::move(tokens), carry));
  WorkspaceArena arena;
  add_regions(arena, x->buf_, p, x->splits_, x->mine_, x->tokens_of(comm.rank()), x->heads_seq_,
              carry, backward);
  SEQPAR_RETURN_IF_ERROR(arena.allocate(x->workspace_, target.device));
  return x;
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
  SEQPAR_ASSIGN_OR_RETURN(splits_,
                          HeadExchangeSplits::of(p_, tokens_, slices_, comm_.rank(), carry));
  return Status::ok();
}

Status HeadExchange::all_to_all(const AllToAllSplit& split) {
  return comm_.all_to_all_v(buf_.send, split.send_bytes, split.send_offsets, buf_.recv,
                            split.recv_bytes, split.recv_offsets);
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
    char* piece = buf_.send + split.send_offsets[static_cast<size_t>(d)];
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
    const char* piece = buf_.recv + split.recv_offsets[static_cast<size_t>(s)];
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
    char* piece = buf_.send + split.send_offsets[static_cast<size_t>(d)];
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
  void* const q_heads[] = {buf_.q_heads};
  void* const kv_heads[] = {buf_.k_heads, buf_.v_heads};
  return to_heads(splits_.forward_in, q_like, kv, {}, q_heads, kv_heads, {});
}

Status HeadExchange::forward_out(const void* o_heads, DType o_dtype, const ForwardArgs& args) {
  const void* const q_like[] = {o_heads};
  const float* const stats[] = {buf_.lse_heads};
  SEQPAR_RETURN_IF_ERROR(to_tokens(splits_.forward_out, o_dtype, q_like, {}, stats));
  const DType dt = p_.dtype;
  const int64_t B = p_.batch, T = tokens_of(comm_.rank()), D = p_.head_dim;
  for (int s = 0; s < static_cast<int>(slices_.size()); ++s) {
    const HeadSlice& from = slices_[static_cast<size_t>(s)];
    const char* piece = buf_.recv + splits_.forward_out.recv_offsets[static_cast<size_t>(s)];
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
  void* const kv_heads[] = {buf_.k_heads, buf_.v_heads};
  if (carry_ == BackwardCarry::kDelta) {
    const void* const q_like[] = {args.q, args.dout};
    const float* const stats[] = {args.lse, delta};
    void* const q_heads[] = {buf_.q_heads, buf_.dout_heads};
    float* const stat_heads[] = {buf_.lse_heads, buf_.delta_heads};
    return to_heads(splits_.backward_in, q_like, kv, stats, q_heads, kv_heads, stat_heads);
  }
  const void* const q_like[] = {args.q, args.dout, args.out};
  const float* const stats[] = {args.lse};
  void* const q_heads[] = {buf_.q_heads, buf_.dout_heads, buf_.out_heads};
  float* const stat_heads[] = {buf_.lse_heads};
  return to_heads(splits_.backward_in, q_like, kv, stats, q_heads, kv_heads, stat_heads);
}

Status HeadExchange::backward_out(const void* dq_heads, const void* dk_heads, const void* dv_heads,
                                  DType grad_dtype, const BackwardArgs& args) {
  const void* const q_like[] = {dq_heads};
  const void* const kv[] = {dk_heads, dv_heads};
  SEQPAR_RETURN_IF_ERROR(to_tokens(splits_.backward_out, grad_dtype, q_like, kv, {}));
  const DType dt = p_.dtype;
  const int64_t B = p_.batch, T = tokens_of(comm_.rank()), D = p_.head_dim;
  // dQ heads arrive once each; dK, dV shares of a kv head several peers shared are summed.
  const size_t local_kv_elems = static_cast<size_t>(B * T * p_.heads_kv * D);
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::zero(buf_.dkv_total, 2 * local_kv_elems * sizeof(float), target_));
  for (int s = 0; s < static_cast<int>(slices_.size()); ++s) {
    const HeadSlice& from = slices_[static_cast<size_t>(s)];
    const PieceParts parts = piece_parts(p_, T, from);
    const char* piece = buf_.recv + splits_.backward_out.recv_offsets[static_cast<size_t>(s)];
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({piece, dt, {B, T, from.q_count, D}}, {0, 0},
                                                      {args.dq, dt, {B, T, p_.heads_q, D}},
                                                      {0, from.q_begin}, T, from.q_count, target_));
    piece += parts.q;
    for (float* total : {buf_.dkv_total, buf_.dkv_total + local_kv_elems}) {
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::add_grid_rect({piece, dt, {B, T, from.kv_count, D}}, {0, 0},
                                    {total, DType::kF32, {B, T, p_.heads_kv, D}},
                                    {0, from.kv_begin}, T, from.kv_count, target_));
      piece += parts.kv;
    }
  }
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(buf_.dkv_total, args.dk, dt, local_kv_elems, target_));
  return buffer_ops::convert_from_float(buf_.dkv_total + local_kv_elems, args.dv, dt,
                                        local_kv_elems, target_);
}

}  // namespace seqpar
