// Tree attention, prefill/training form: forward and backward (see tree_attention.hpp).
#include "runtime/tree_attention.hpp"

#include <cstring>

#include "attention/dispatch.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// The rows a forward combines: every rank's queries, rank-major, as P*B batches of S/P rows.
CombineShape combine_shape(const AttentionProblem& p, int ranks) {
  return {ranks * p.batch, p.seq / ranks, p.heads_q, p.head_dim};
}

}  // namespace

CommVolume tree_forward_comm(const AttentionProblem& p, int ranks, int ranks_per_node) {
  const int64_t q = p.batch * (p.seq / ranks) * p.heads_q * p.head_dim;
  CommVolume v;
  v[CommOp::kAllGather] = 1;
  v.bytes_sent = (ranks - 1) * q * static_cast<int64_t>(dtype_size(p.dtype));
  v += tree_combine_comm(combine_shape(p, ranks), ranks, ranks_per_node);
  return v;
}

CommVolume tree_backward_comm(const AttentionProblem& p, int ranks) {
  const int64_t local = p.seq / ranks;
  const int64_t q = p.batch * local * p.heads_q * p.head_dim;
  const int64_t s = p.batch * p.heads_q * local;
  const int64_t e = static_cast<int64_t>(dtype_size(p.dtype));
  CommVolume v;
  v[CommOp::kAllGather] = 1;
  v[CommOp::kReduceScatter] = 1;
  v.bytes_sent = (ranks - 1) * (2 * s * 4 + 2 * q * e) + (ranks - 1) * q * 4;
  return v;
}

StatusOr<std::unique_ptr<Scheme>> TreeAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(context.device == Device::kHost, StatusCode::kUnsupported, "tree on ",
                 device_name(context.device),
                 " memory needs the CUDA block kernels, which this build does not have yet");
  std::unique_ptr<TreeAttention> scheme(new TreeAttention(context));
  const AttentionProblem& p = context.problem;
  scheme->pack_bytes_ = 2 * scheme->shard_.lse_elems * sizeof(float) + 2 * scheme->shard_.q_bytes;
  SEQPAR_ASSIGN_OR_RETURN(scheme->combine_,
                          TreeCombine::create(*context.comm, context.ranks_per_node,
                                              combine_shape(p, context.comm->size())));
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

PositionMap TreeAttention::positions_of(int rank) const {
  return PositionMap::affine(rank * ctx_.layout.local_seq());
}

Status TreeAttention::allocate_workspace() {
  const size_t ranks = static_cast<size_t>(ctx_.layout.ranks());
  WorkspaceArena arena;
  arena.add(q_all_, ranks * shard_.q_bytes);
  arena.add(acc_all_, ranks * shard_.q_elems * sizeof(float));
  arena.add(lse_all_, ranks * shard_.lse_elems * sizeof(float));
  arena.add(pack_, pack_bytes_);
  arena.add(pack_all_, ranks * pack_bytes_);
  arena.add(dq_own_, shard_.q_elems * sizeof(float));
  arena.add(dkv_, 2 * shard_.kv_elems * sizeof(float));
  arena.add(kernel_scratch_,
            block_kernel_scratch_bytes(shard_block_shape(ctx_), {ctx_.device, ctx_.stream}));
  return arena.allocate(workspace_);
}

Status TreeAttention::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int rank = comm.rank();
  const KernelTarget target{ctx_.device, ctx_.stream};

  SEQPAR_RETURN_IF_ERROR(
      comm.all_gather(args.q, q_all_, shard_.q_bytes));  // q_all_ (P, B, Sl, Hq, D)

  BlockForwardParams block;
  block.shape = shard_block_shape(ctx_);
  block.dtype = p.dtype;
  block.k = args.k;  // (B, S_local, Hkv, D): this rank's keys, never sent
  block.v = args.v;
  block.k_pos = positions_of(rank);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  for (int r = 0; r < comm.size(); ++r) {  // rank r's queries against our keys
    block.q = static_cast<const char*>(q_all_) + static_cast<size_t>(r) * shard_.q_bytes;
    block.out = acc_all_ + static_cast<size_t>(r) * shard_.q_elems;    // (B, S_local, Hq, D)
    block.lse = lse_all_ + static_cast<size_t>(r) * shard_.lse_elems;  // (B, Hq, S_local)
    block.q_pos = positions_of(r);
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target));
  }
  SEQPAR_RETURN_IF_ERROR(
      combine_->combine(acc_all_, lse_all_, rank * p.batch, (rank + 1) * p.batch));
  convert_from_float(acc_all_ + static_cast<size_t>(rank) * shard_.q_elems, args.out, p.dtype,
                     shard_.q_elems);
  std::memcpy(args.lse, lse_all_ + static_cast<size_t>(rank) * shard_.lse_elems,
              shard_.lse_elems * sizeof(float));
  return Status::ok();
}

Status TreeAttention::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int rank = comm.rank();
  const BlockShape shape = shard_block_shape(ctx_);
  const KernelTarget target{ctx_.device, ctx_.stream};
  const size_t stat_bytes = shard_.lse_elems * sizeof(float);

  // pack_ = [lse (B, Hq, Sl) fp32 | delta (B, Hq, Sl) fp32 | q, dout (B, Sl, Hq, D) storage]
  std::memcpy(pack_, args.lse, stat_bytes);
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, p.dtype, shape.batch, shape.seq_q,
                                             shape.heads_q, shape.head_dim,
                                             reinterpret_cast<float*>(pack_ + stat_bytes), target));
  std::memcpy(pack_ + 2 * stat_bytes, args.q, shard_.q_bytes);
  std::memcpy(pack_ + 2 * stat_bytes + shard_.q_bytes, args.dout, shard_.q_bytes);
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(pack_, pack_all_, pack_bytes_));

  std::memset(acc_all_, 0, static_cast<size_t>(comm.size()) * shard_.q_elems * sizeof(float));
  std::memset(dkv_, 0, 2 * shard_.kv_elems * sizeof(float));
  BlockBackwardParams block;
  block.shape = shape;
  block.dtype = p.dtype;
  block.k = args.k;
  block.v = args.v;
  block.dk = dkv_;
  block.dv = dkv_ + shard_.kv_elems;
  block.k_pos = positions_of(rank);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  for (int r = 0; r < comm.size(); ++r) {  // rank r's queries against our keys
    const char* from = pack_all_ + static_cast<size_t>(r) * pack_bytes_;
    block.lse = reinterpret_cast<const float*>(from);
    block.delta = reinterpret_cast<const float*>(from + stat_bytes);
    block.q = from + 2 * stat_bytes;
    block.dout = from + 2 * stat_bytes + shard_.q_bytes;
    block.dq = acc_all_ + static_cast<size_t>(r) * shard_.q_elems;  // (B, S_local, Hq, D) partial
    block.q_pos = positions_of(r);
    SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));
  }
  // Each rank's dQ rows summed over every rank's keys, in fp32.
  SEQPAR_RETURN_IF_ERROR(
      comm.reduce_scatter(acc_all_, dq_own_, shard_.q_elems, DType::kF32, ReduceOp::kSum));
  convert_from_float(dq_own_, args.dq, p.dtype, shard_.q_elems);
  convert_from_float(dkv_, args.dk, p.dtype, shard_.kv_elems);
  convert_from_float(dkv_ + shard_.kv_elems, args.dv, p.dtype, shard_.kv_elems);
  return Status::ok();
}

}  // namespace seqpar
