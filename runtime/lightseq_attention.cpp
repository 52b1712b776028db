// LightSeq balanced DistAttn: forward and backward step loops over lightseq_schedule().
#include "runtime/lightseq_attention.hpp"

#include <algorithm>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> LightSeqAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(
      context.device == Device::kHost, StatusCode::kUnsupported, scheme_name(context.kind), " on ",
      device_name(context.device),
      " memory is not supported yet: the schemes' workspace and elementwise work follow the "
      "plan's device, but the communicators do not move device memory yet");
  SEQPAR_REQUIRE(context.problem.mask == MaskKind::kCausal, StatusCode::kInvalidArgument,
                 "lightseq needs the causal mask: its balancing moves the causal work of late "
                 "ranks to idle early ranks, and a ",
                 mask_name(context.problem.mask),
                 " mask has no imbalance to fix (use ring, which does the same work with less "
                 "communication)");
  std::unique_ptr<LightSeqAttention> scheme(new LightSeqAttention(context));
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

PositionMap LightSeqAttention::positions_of(int rank) const {
  return PositionMap::affine(ctx_.layout.global_position(rank, 0));  // contiguous layout
}

ShardSizes LightSeqAttention::sizes_of(int rank) const { return ShardSizes::of_rank(ctx_, rank); }

Status LightSeqAttention::allocate_workspace() {
  const int ranks = ctx_.layout.ranks();
  const bool moves_kv = ranks > 1;
  const bool has_helpers = ranks > 2;                // P <= 2 has no helper steps
  const bool bwd = ctx_.backward;                    // false: forward-only, no backward buffers
  const ShardSizes any = ShardSizes::largest(ctx_);  // buffers holding another rank's block
  const size_t lse_bytes = shard_.lse_elems * sizeof(float);
  const size_t any_lse_bytes = any.lse_elems * sizeof(float);

  // One arena; buffers a rank count never uses are empty, and so are those only backward uses in
  // a forward-only plan (a helper then receives Q alone: no dO, LSE or delta).
  WorkspaceArena arena;
  for (char*& kv_recv : kv_recv_) arena.add(kv_recv, moves_kv ? 2 * any.kv_bytes : 0);
  const size_t q_recv_bytes = bwd ? 2 * any.q_bytes + 2 * any_lse_bytes : any.q_bytes;
  for (char*& q_recv : q_recv_) arena.add(q_recv, has_helpers ? q_recv_bytes : 0);
  arena.add(acc_q_, shard_.q_elems * sizeof(float));
  arena.add(delta_, bwd ? lse_bytes : 0);
  arena.add(partial_, has_helpers ? any.q_elems * sizeof(float) + any_lse_bytes : 0);
  arena.add(partial_recv_, has_helpers ? shard_.q_elems * sizeof(float) + lse_bytes : 0);
  arena.add(dkv_local_, moves_kv && bwd ? 2 * any.kv_elems * sizeof(float) : 0);
  arena.add(dkv_total_, bwd ? 2 * shard_.kv_elems * sizeof(float) : 0);
  arena.add(share_send_,
            moves_kv && bwd ? std::max(2 * any.kv_bytes, has_helpers ? any.q_bytes : 0) : 0);
  arena.add(dkv_recv_, moves_kv && bwd ? 2 * shard_.kv_bytes : 0);
  arena.add(dq_recv_, has_helpers && bwd ? shard_.q_bytes : 0);
  arena.add(kernel_scratch_, block_kernel_scratch_bytes(largest_block_shape(ctx_),
                                                        {ctx_.device, ctx_.stream}, ctx_.backward));
  return arena.allocate(workspace_, ctx_.device);
}

Status LightSeqAttention::post_inputs(int step, int slot, const void* q, const void* k,
                                      const void* v, const void* dout, const float* lse,
                                      bool backward, Request& request) {
  const LightSeqRankStep& s = schedule_.at(step, ctx_.comm->rank());
  const size_t lse_bytes = shard_.lse_elems * sizeof(float);
  char* kv_landing = kv_recv_[slot];
  char* q_landing = q_recv_[slot];  // Q, dO, LSE, delta
  P2POp ops[12];
  size_t n = 0;
  if (s.kv_to >= 0) {
    ops[n++] = P2POp::send(s.kv_to, k, shard_.kv_bytes);
    ops[n++] = P2POp::send(s.kv_to, v, shard_.kv_bytes);
  }
  if (s.kv_from >= 0) {
    const size_t kv_bytes = sizes_of(s.kv_from).kv_bytes;
    ops[n++] = P2POp::recv(s.kv_from, kv_landing, kv_bytes);
    ops[n++] = P2POp::recv(s.kv_from, kv_landing + kv_bytes, kv_bytes);
  }
  if (s.q_to >= 0) {
    ops[n++] = P2POp::send(s.q_to, q, shard_.q_bytes);
    if (backward) {
      ops[n++] = P2POp::send(s.q_to, dout, shard_.q_bytes);
      ops[n++] = P2POp::send(s.q_to, lse, lse_bytes);
      ops[n++] = P2POp::send(s.q_to, delta_, lse_bytes);
    }
  }
  if (s.q_from >= 0) {
    const ShardSizes from = sizes_of(s.q_from);
    const size_t from_lse_bytes = from.lse_elems * sizeof(float);
    ops[n++] = P2POp::recv(s.q_from, q_landing, from.q_bytes);
    if (backward) {
      ops[n++] = P2POp::recv(s.q_from, q_landing + from.q_bytes, from.q_bytes);
      ops[n++] = P2POp::recv(s.q_from, q_landing + 2 * from.q_bytes, from_lse_bytes);
      ops[n++] =
          P2POp::recv(s.q_from, q_landing + 2 * from.q_bytes + from_lse_bytes, from_lse_bytes);
    }
  }
  return n == 0 ? Status::ok() : ctx_.comm->start_exchange({ops, n}, request);
}

Status LightSeqAttention::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int rank = comm.rank();
  const BlockShape own = shard_block_shape(ctx_, rank, rank);
  const int steps = static_cast<int>(schedule_.steps.size());
  const KernelTarget target{ctx_.device, ctx_.stream};
  // A partial (O, LSE) in fp32 of `r`'s queries.
  auto partial_bytes = [&](int r) {
    const ShardSizes sizes = sizes_of(r);
    return sizes.q_elems * sizeof(float) + sizes.lse_elems * sizeof(float);
  };

  BlockForwardParams block;
  block.dtype = p.dtype;
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  block.progress = comm_progress_hook(*ctx_.comm);  // transfers in flight move meanwhile

  for (int step = 0; step < steps; ++step) {
    const LightSeqRankStep& s = schedule_.at(step, rank);
    const int slot = step % 2;
    Request next;  // the next step's inputs, in flight while this step computes
    if (step + 1 < steps) {
      SEQPAR_RETURN_IF_ERROR(post_inputs(step + 1, (step + 1) % 2, args.q, args.k, args.v, nullptr,
                                         nullptr, false, next));
    }
    Request results;      // a helper's (O, LSE) going back to, or arriving at, the query owner
    if (s.q_from >= 0) {  // helping: rank q_from's queries against our own K/V
      block.shape = shard_block_shape(ctx_, s.q_from, rank);
      block.q = q_recv_[slot];
      block.k = args.k;
      block.v = args.v;
      block.out = partial_;                               // (B, S_local(q_from), Hq, D) fp32
      block.lse = partial_ + sizes_of(s.q_from).q_elems;  // (B, Hq, S_local(q_from)) fp32
      block.q_pos = positions_of(s.q_from);
      block.k_pos = positions_of(rank);
      block.accumulate = false;
      SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target));
      const P2POp ops[] = {P2POp::send(s.q_from, partial_, partial_bytes(s.q_from))};
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, results));
    } else if (s.computes()) {  // our queries against our own or arriving K/V
      if (s.q_to >= 0) {
        const P2POp ops[] = {P2POp::recv(s.q_to, partial_recv_, partial_bytes(rank))};
        SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, results));
      }
      block.shape = shard_block_shape(ctx_, rank, s.kv_block);
      block.q = args.q;
      block.k = s.kv_from >= 0 ? kv_recv_[slot] : args.k;
      block.v = s.kv_from >= 0 ? kv_recv_[slot] + sizes_of(s.kv_from).kv_bytes : args.v;
      block.out = acc_q_;    // (B, S_local, Hq, D) fp32 running output
      block.lse = args.lse;  // (B, Hq, S_local) running LSE, final after the last step
      block.q_pos = positions_of(rank);
      block.k_pos = positions_of(s.kv_block);
      block.accumulate = step > 0;
      SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target));
      if (s.q_to >= 0) {  // merge the helper's partial in fp32
        SEQPAR_RETURN_IF_ERROR(comm.wait(results));
        SEQPAR_RETURN_IF_ERROR(run_merge_partials(acc_q_, args.lse, partial_recv_,
                                                  partial_recv_ + shard_.q_elems, own.batch,
                                                  own.seq_q, own.heads_q, own.head_dim, target));
      }
    }
    SEQPAR_RETURN_IF_ERROR(comm.wait(results));
    SEQPAR_RETURN_IF_ERROR(comm.wait(next));
  }
  return buffer_ops::convert_from_float(acc_q_, args.out, p.dtype, shard_.q_elems, target);
}

Status LightSeqAttention::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int rank = comm.rank();
  const BlockShape own = shard_block_shape(ctx_, rank, rank);
  const int steps = static_cast<int>(schedule_.steps.size());
  const KernelTarget target{ctx_.device, ctx_.stream};

  // delta (B, Hq, S_local) = rowsum(dO * O), from the final forward output.
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, p.dtype, own.batch, own.seq_q,
                                             own.heads_q, own.head_dim, delta_, target));
  // dQ (B, S_local, Hq, D) fp32
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(acc_q_, shard_.q_elems * sizeof(float), target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(dkv_total_, 2 * shard_.kv_elems * sizeof(float), target));

  BlockBackwardParams block;
  block.dtype = p.dtype;
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  block.progress = comm_progress_hook(*ctx_.comm);  // transfers in flight move meanwhile

  Request shares;  // the previous step's shares, in flight while this step computes
  const LightSeqRankStep* previous = nullptr;
  for (int step = 0; step < steps; ++step) {
    const LightSeqRankStep& s = schedule_.at(step, rank);
    const int slot = step % 2;
    Request next;
    if (step + 1 < steps) {
      SEQPAR_RETURN_IF_ERROR(post_inputs(step + 1, (step + 1) % 2, args.q, args.k, args.v,
                                         args.dout, args.lse, true, next));
    }
    if (s.q_from >= 0) {  // helping: dQ share for rank q_from; dK, dV of our own block
      const ShardSizes from = sizes_of(s.q_from);
      const char* landing = q_recv_[slot];  // Q, dO, then the final LSE and delta
      SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(partial_, from.q_elems * sizeof(float), target));
      block.shape = shard_block_shape(ctx_, s.q_from, rank);
      block.q = landing;
      block.dout = landing + from.q_bytes;
      block.lse = reinterpret_cast<const float*>(landing + 2 * from.q_bytes);
      block.delta = block.lse + from.lse_elems;
      block.dq = partial_;  // (B, S_local(q_from), Hq, D) fp32
      block.k = args.k;
      block.v = args.v;
      block.dk = dkv_total_;
      block.dv = dkv_total_ + shard_.kv_elems;
      block.q_pos = positions_of(s.q_from);
      block.k_pos = positions_of(rank);
      SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));
    } else if (s.computes()) {  // our queries: dQ stays; a dK, dV share for rank kv_from
      const bool own_kv = s.kv_from < 0;
      const ShardSizes held = sizes_of(s.kv_block);
      float* dkv = own_kv ? dkv_total_ : dkv_local_;  // (2, B, S_local(kv_block), Hkv, D) fp32
      if (!own_kv) {
        SEQPAR_RETURN_IF_ERROR(
            buffer_ops::zero(dkv_local_, 2 * held.kv_elems * sizeof(float), target));
      }
      block.shape = shard_block_shape(ctx_, rank, s.kv_block);
      block.q = args.q;
      block.dout = args.dout;
      block.lse = args.lse;
      block.delta = delta_;
      block.dq = acc_q_;
      block.k = own_kv ? args.k : kv_recv_[slot];
      block.v = own_kv ? args.v : kv_recv_[slot] + held.kv_bytes;
      block.dk = dkv;
      block.dv = dkv + held.kv_elems;
      block.q_pos = positions_of(rank);
      block.k_pos = positions_of(s.kv_block);
      SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));
    }

    // The previous step's shares have had this step's compute to arrive: sum them in fp32.
    SEQPAR_RETURN_IF_ERROR(comm.wait(shares));
    if (previous != nullptr && previous->kv_to >= 0) {
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::add_to_float(dkv_total_, dkv_recv_, p.dtype, 2 * shard_.kv_elems, target));
    }
    if (previous != nullptr && previous->q_to >= 0) {
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::add_to_float(acc_q_, dq_recv_, p.dtype, shard_.q_elems, target));
    }
    // This step's shares: ours out (in the storage dtype), and shares of our blocks in.
    P2POp ops[3];
    size_t n = 0;
    if (s.q_from >= 0) {
      const ShardSizes from = sizes_of(s.q_from);
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::convert_from_float(partial_, share_send_, p.dtype, from.q_elems, target));
      ops[n++] = P2POp::send(s.q_from, share_send_, from.q_bytes);
    } else if (s.kv_from >= 0) {
      const ShardSizes held = sizes_of(s.kv_from);
      SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(dkv_local_, share_send_, p.dtype,
                                                            2 * held.kv_elems, target));
      ops[n++] = P2POp::send(s.kv_from, share_send_, 2 * held.kv_bytes);
    }
    if (s.kv_to >= 0) ops[n++] = P2POp::recv(s.kv_to, dkv_recv_, 2 * shard_.kv_bytes);
    if (s.q_to >= 0) ops[n++] = P2POp::recv(s.q_to, dq_recv_, shard_.q_bytes);
    if (n > 0) SEQPAR_RETURN_IF_ERROR(comm.start_exchange({ops, n}, shares));
    previous = &s;
    SEQPAR_RETURN_IF_ERROR(comm.wait(next));
  }
  SEQPAR_RETURN_IF_ERROR(comm.wait(shares));  // the last step's shares
  if (previous->kv_to >= 0) {
    SEQPAR_RETURN_IF_ERROR(
        buffer_ops::add_to_float(dkv_total_, dkv_recv_, p.dtype, 2 * shard_.kv_elems, target));
  }
  if (previous->q_to >= 0) {
    SEQPAR_RETURN_IF_ERROR(
        buffer_ops::add_to_float(acc_q_, dq_recv_, p.dtype, shard_.q_elems, target));
  }
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(dkv_total_, args.dk, p.dtype, shard_.kv_elems, target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(dkv_total_ + shard_.kv_elems, args.dv,
                                                        p.dtype, shard_.kv_elems, target));
  return buffer_ops::convert_from_float(acc_q_, args.dq, p.dtype, shard_.q_elems, target);
}

}  // namespace seqpar
