// Ring attention engine (ring, striped, zigzag): forward and backward step loops.
#include "runtime/ring_attention.hpp"

#include <new>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> RingAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(
      context.device == Device::kHost, StatusCode::kUnsupported, scheme_name(context.kind), " on ",
      device_name(context.device),
      " memory is not supported yet: the schemes' workspace and elementwise work follow the "
      "plan's device, but the communicators do not move device memory yet");
  std::unique_ptr<RingAttention> scheme(new RingAttention(context));
  const Layout& layout = context.layout;
  try {
    scheme->all_positions_.resize(static_cast<size_t>(layout.seq()));
    scheme->positions_of_.reserve(static_cast<size_t>(layout.ranks()));
  } catch (const std::bad_alloc&) {
    return SEQPAR_FAIL(StatusCode::kOutOfMemory, "no memory for the positions of ", layout.seq(),
                       " tokens");
  }
  int64_t* positions = scheme->all_positions_.data();
  for (int r = 0; r < layout.ranks(); ++r) {
    layout.positions(r, positions);
    const std::vector<Segment> segments = layout.segments(r);
    scheme->positions_of_.push_back(
        segments.size() == 1
            ? PositionMap::affine(segments[0].global_offset, segments[0].global_stride)
            : PositionMap::indexed(positions));
    positions += layout.local_seq(r);
  }
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

Status RingAttention::post_kv_shift(int step, const void* k, const void* v, char* landing,
                                    Request& request) {
  Communicator& comm = *ctx_.comm;
  const int ranks = comm.size();
  const int next = (comm.rank() + 1) % ranks;
  const int prev = (comm.rank() + ranks - 1) % ranks;
  // We hold the block of rank r - step and pass it on; the block of rank r - step - 1 arrives.
  const size_t held = kv_bytes_of((comm.rank() - step + ranks) % ranks);
  const size_t arriving = kv_bytes_of((comm.rank() - step - 1 + 2 * ranks) % ranks);
  const P2POp ops[] = {P2POp::send(next, k, held), P2POp::send(next, v, held),
                       P2POp::recv(prev, landing, arriving),
                       P2POp::recv(prev, landing + arriving, arriving)};
  return comm.start_exchange(ops, request);
}

size_t RingAttention::kv_bytes_of(int rank) const {
  return ShardSizes::of_rank(ctx_, rank).kv_bytes;
}

Status RingAttention::allocate_workspace() {
  const bool ring = ctx_.layout.ranks() > 1;
  const bool bwd = ctx_.backward;
  const ShardSizes largest = ShardSizes::largest(ctx_);  // any rank's block fits

  // One arena; buffers only a multi-rank ring needs are empty at P=1, and those only backward
  // uses are empty in a forward-only plan.
  WorkspaceArena arena;
  arena.add(kv_recv_[0], ring ? 2 * largest.kv_bytes : 0);
  arena.add(kv_recv_[1], ring ? 2 * largest.kv_bytes : 0);
  arena.add(acc_q_, shard_.q_elems * sizeof(float));
  arena.add(delta_, bwd ? shard_.lse_elems * sizeof(float) : 0);
  arena.add(dkv_local_, bwd ? 2 * largest.kv_elems * sizeof(float) : 0);
  arena.add(dkv_total_, bwd ? 2 * shard_.kv_elems * sizeof(float) : 0);
  arena.add(dkv_send_, ring && bwd ? 2 * largest.kv_bytes : 0);
  arena.add(dkv_recv_, ring && bwd ? 2 * shard_.kv_bytes : 0);
  arena.add(kernel_scratch_, block_kernel_scratch_bytes(largest_block_shape(ctx_),
                                                        {ctx_.device, ctx_.stream}, ctx_.backward));
  return arena.allocate(workspace_, ctx_.device);
}

Status RingAttention::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int ranks = comm.size();
  const int rank = comm.rank();
  const KernelTarget target{ctx_.device, ctx_.stream};

  BlockForwardParams block;
  block.dtype = p.dtype;
  block.q = args.q;
  block.out = acc_q_;    // (B, S_local, Hq, D) fp32 running output
  block.lse = args.lse;  // (B, Hq, S_local) running LSE, final after the last step
  block.q_pos = positions_of_[static_cast<size_t>(rank)];
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  block.progress = comm_progress_hook(comm);  // the next block's transfer moves meanwhile

  const void* k = args.k;  // K, V of the block held this step: (B, S_local, Hkv, D)
  const void* v = args.v;
  for (int step = 0; step < ranks; ++step) {
    const int source = (rank - step + ranks) % ranks;  // owner of the block held this step
    Request incoming;
    char* landing = static_cast<char*>(kv_recv_[step % 2]);
    if (step + 1 < ranks) {  // post the next block's transfer before computing on this one
      SEQPAR_RETURN_IF_ERROR(post_kv_shift(step, k, v, landing, incoming));
    }
    block.shape = shard_block_shape(ctx_, rank, source);
    block.k = k;
    block.v = v;
    block.k_pos = positions_of_[static_cast<size_t>(source)];
    block.accumulate = step > 0;
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target));
    SEQPAR_RETURN_IF_ERROR(comm.wait(incoming));
    k = landing;  // K then V of the next block: (B, S_local(source - 1), Hkv, D) each
    v = landing + kv_bytes_of((source - 1 + ranks) % ranks);
  }
  return buffer_ops::convert_from_float(acc_q_, args.out, p.dtype, shard_.q_elems, target);
}

Status RingAttention::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int ranks = comm.size();
  const int rank = comm.rank();
  const BlockShape own = shard_block_shape(ctx_, rank, rank);
  const size_t kv_elems = shard_.kv_elems;
  const KernelTarget target{ctx_.device, ctx_.stream};

  // delta (B, Hq, S_local) = rowsum(dO * O), from the final forward output.
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, p.dtype, own.batch, own.seq_q,
                                             own.heads_q, own.head_dim, delta_, target));
  // dQ (B, S_local, Hq, D) fp32
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(acc_q_, shard_.q_elems * sizeof(float), target));

  BlockBackwardParams block;
  block.dtype = p.dtype;
  block.q = args.q;
  block.dout = args.dout;
  block.lse = args.lse;
  block.delta = delta_;
  block.dq = acc_q_;
  block.q_pos = positions_of_[static_cast<size_t>(rank)];
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  block.progress = comm_progress_hook(comm);  // the next block's transfer moves meanwhile

  const void* k = args.k;
  const void* v = args.v;
  Request
      shares;  // our share of the previous block going to its owner, and a share of ours arriving
  for (int step = 0; step < ranks; ++step) {
    const int source = (rank - step + ranks) % ranks;  // owner of the block held this step
    Request incoming;
    char* landing = static_cast<char*>(kv_recv_[step % 2]);
    if (step + 1 < ranks) SEQPAR_RETURN_IF_ERROR(post_kv_shift(step, k, v, landing, incoming));
    // Step 0's block is our own: its share goes straight into the total; later shares go out.
    const size_t held_elems = ShardSizes::of_rank(ctx_, source).kv_elems;
    float* share = step == 0 ? dkv_total_ : dkv_local_;  // (2, B, S_local, Hkv, D): dK then dV
    SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(share, 2 * held_elems * sizeof(float), target));
    block.shape = shard_block_shape(ctx_, rank, source);
    block.dk = share;
    block.dv = share + held_elems;
    block.k = k;
    block.v = v;
    block.k_pos = positions_of_[static_cast<size_t>(source)];
    SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));

    if (step > 0) {
      SEQPAR_RETURN_IF_ERROR(comm.wait(shares));  // last step's transfers are done
      if (step > 1) {
        SEQPAR_RETURN_IF_ERROR(
            buffer_ops::add_to_float(dkv_total_, dkv_recv_, p.dtype, 2 * kv_elems, target));
      }
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::convert_from_float(dkv_local_, dkv_send_, p.dtype, 2 * held_elems, target));
      const int holder = (rank + step) % ranks;  // holds our block this step
      const P2POp ops[] = {P2POp::send(source, dkv_send_, 2 * kv_bytes_of(source)),
                           P2POp::recv(holder, dkv_recv_, 2 * shard_.kv_bytes)};
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, shares));
    }
    SEQPAR_RETURN_IF_ERROR(comm.wait(incoming));
    k = landing;
    v = landing + kv_bytes_of((source - 1 + ranks) % ranks);
  }
  if (ranks > 1) {  // the last share of our block
    SEQPAR_RETURN_IF_ERROR(comm.wait(shares));
    SEQPAR_RETURN_IF_ERROR(
        buffer_ops::add_to_float(dkv_total_, dkv_recv_, p.dtype, 2 * kv_elems, target));
  }
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(dkv_total_, args.dk, p.dtype, kv_elems, target));
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(dkv_total_ + kv_elems, args.dv, p.dtype, kv_elems, target));
  return buffer_ops::convert_from_float(acc_q_, args.dq, p.dtype, shard_.q_elems, target);
}

}  // namespace seqpar
