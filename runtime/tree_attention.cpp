// Tree attention, prefill/training form: forward and backward (see tree_attention.hpp).
#include "runtime/tree_attention.hpp"

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// S_max: the tokens of one gathered slice (the largest shard).
int64_t slot_tokens(const AttentionProblem& p, int ranks) {
  return BalancedSplit{p.seq, ranks}.max_size();
}

// The rows a forward combines: every rank's queries, rank-major, as P*B batches of S_max rows.
CombineShape combine_shape(const AttentionProblem& p, int ranks) {
  return {ranks * p.batch, slot_tokens(p, ranks), p.heads_q, p.head_dim};
}

}  // namespace

CommVolume tree_forward_comm(const AttentionProblem& p, int ranks, int ranks_per_node) {
  const int64_t q = p.batch * slot_tokens(p, ranks) * p.heads_q * p.head_dim;
  CommVolume v;
  v[CommOp::kAllGather] = 1;
  v.bytes_sent = (ranks - 1) * q * static_cast<int64_t>(dtype_size(p.dtype));
  v += tree_combine_comm(combine_shape(p, ranks), ranks, ranks_per_node);
  return v;
}

CommVolume tree_backward_comm(const AttentionProblem& p, int ranks) {
  const int64_t local = slot_tokens(p, ranks);
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
  SEQPAR_REQUIRE(
      context.device == Device::kHost, StatusCode::kUnsupported, "tree on ",
      device_name(context.device),
      " memory is not supported yet: the schemes' workspace and elementwise work follow the "
      "plan's device, but the communicators do not move device memory yet");
  std::unique_ptr<TreeAttention> scheme(new TreeAttention(context));
  const AttentionProblem& p = context.problem;
  scheme->pack_bytes_ = 2 * scheme->slot_.lse_elems * sizeof(float) + 2 * scheme->slot_.q_bytes;
  SEQPAR_ASSIGN_OR_RETURN(scheme->combine_,
                          TreeCombine::create(*context.comm, context.ranks_per_node,
                                              combine_shape(p, context.comm->size()),
                                              {context.device, context.stream}));
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

PositionMap TreeAttention::positions_of(int rank) const {
  return PositionMap::affine(ctx_.layout.global_position(rank, 0));
}

Status TreeAttention::allocate_workspace() {
  const size_t ranks = static_cast<size_t>(ctx_.layout.ranks());
  const size_t bwd = ctx_.backward ? 1 : 0;  // a forward-only plan has no backward buffers
  const size_t pack_bytes = bwd * pack_bytes_;
  WorkspaceArena arena;
  arena.add(q_stage_, padded() ? slot_.q_bytes : 0);
  arena.add(q_all_, ranks * slot_.q_bytes);
  arena.add(acc_all_, ranks * slot_.q_elems * sizeof(float));
  arena.add(lse_all_, ranks * slot_.lse_elems * sizeof(float));
  arena.add(pack_, pack_bytes);
  arena.add(pack_all_, ranks * pack_bytes);
  arena.add(dq_own_, bwd * slot_.q_elems * sizeof(float));
  arena.add(dkv_, bwd * 2 * shard_.kv_elems * sizeof(float));
  arena.add(kernel_scratch_, block_kernel_scratch_bytes(largest_block_shape(ctx_),
                                                        {ctx_.device, ctx_.stream}, ctx_.backward));
  SEQPAR_RETURN_IF_ERROR(arena.allocate(workspace_, ctx_.device));
  // Padding rows stay zero: steps overwrite only the rows of our tokens.
  const KernelTarget target{ctx_.device, ctx_.stream};
  if (padded()) SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(q_stage_, slot_.q_bytes, target));
  return buffer_ops::zero(pack_, pack_bytes, target);
}

Status TreeAttention::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int rank = comm.rank();
  const KernelTarget target{ctx_.device, ctx_.stream};
  const DType dt = p.dtype;
  const int64_t B = p.batch, Hq = p.heads_q, D = p.head_dim;
  const int64_t local = ctx_.layout.local_seq(rank), slot = ctx_.layout.max_local_seq();

  const void* q_send = args.q;  // (B, S_local, Hq, D), or padded to (B, S_max, Hq, D)
  if (padded()) {
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({args.q, dt, {B, local, Hq, D}}, {0, 0},
                                                      {q_stage_, dt, {B, slot, Hq, D}}, {0, 0},
                                                      local, Hq, target));
    q_send = q_stage_;
  }
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(q_send, q_all_, slot_.q_bytes));  // (P, B, S_max, Hq, D)

  BlockForwardParams block;
  block.shape = {B, slot, local, Hq, p.heads_kv, D};  // every slice against our keys
  block.dtype = dt;
  block.k = args.k;  // (B, S_local, Hkv, D): this rank's keys, never sent
  block.v = args.v;
  block.k_pos = positions_of(rank);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  for (int r = 0; r < comm.size(); ++r) {  // rank r's queries against our keys
    block.q = static_cast<const char*>(q_all_) + static_cast<size_t>(r) * slot_.q_bytes;
    block.out = acc_all_ + static_cast<size_t>(r) * slot_.q_elems;    // (B, S_max, Hq, D)
    block.lse = lse_all_ + static_cast<size_t>(r) * slot_.lse_elems;  // (B, Hq, S_max)
    block.q_pos = positions_of(r);
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target));
  }
  SEQPAR_RETURN_IF_ERROR(combine_->combine(acc_all_, lse_all_, rank * B, (rank + 1) * B));
  // Our rows of our slice: O rounded once to storage, and the LSE.
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {acc_all_ + static_cast<size_t>(rank) * slot_.q_elems, DType::kF32, {B, slot, Hq, D}}, {0, 0},
      {args.out, dt, {B, local, Hq, D}}, {0, 0}, local, Hq, target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {lse_all_ + static_cast<size_t>(rank) * slot_.lse_elems, DType::kF32, {B, Hq, slot, 1}},
      {0, 0}, {args.lse, DType::kF32, {B, Hq, local, 1}}, {0, 0}, Hq, local, target));
  return Status::ok();
}

Status TreeAttention::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int rank = comm.rank();
  const KernelTarget target{ctx_.device, ctx_.stream};
  const DType dt = p.dtype;
  const int64_t B = p.batch, Hq = p.heads_q, D = p.head_dim;
  const int64_t local = ctx_.layout.local_seq(rank), slot = ctx_.layout.max_local_seq();
  const size_t stat_bytes = slot_.lse_elems * sizeof(float);

  // pack_ = [lse (B, Hq, S_max) fp32 | delta (B, Hq, S_max) fp32 | q, dout (B, S_max, Hq, D)
  // storage], our rows of each; padding rows stay zero.
  float* pack_lse = reinterpret_cast<float*>(pack_);
  float* pack_delta = reinterpret_cast<float*>(pack_ + stat_bytes);
  char* pack_q = pack_ + 2 * stat_bytes;
  char* pack_dout = pack_q + slot_.q_bytes;
  // delta of our rows into dq_own_ (free until the reduce-scatter), then into the pack.
  SEQPAR_RETURN_IF_ERROR(
      run_attention_delta(args.out, args.dout, dt, B, local, Hq, D, dq_own_, target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {args.lse, DType::kF32, {B, Hq, local, 1}}, {0, 0}, {pack_lse, DType::kF32, {B, Hq, slot, 1}},
      {0, 0}, Hq, local, target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {dq_own_, DType::kF32, {B, Hq, local, 1}}, {0, 0},
      {pack_delta, DType::kF32, {B, Hq, slot, 1}}, {0, 0}, Hq, local, target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({args.q, dt, {B, local, Hq, D}}, {0, 0},
                                                    {pack_q, dt, {B, slot, Hq, D}}, {0, 0}, local,
                                                    Hq, target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({args.dout, dt, {B, local, Hq, D}}, {0, 0},
                                                    {pack_dout, dt, {B, slot, Hq, D}}, {0, 0},
                                                    local, Hq, target));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(pack_, pack_all_, pack_bytes_));

  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(
      acc_all_, static_cast<size_t>(comm.size()) * slot_.q_elems * sizeof(float), target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(dkv_, 2 * shard_.kv_elems * sizeof(float), target));
  BlockBackwardParams block;
  block.shape = {B, slot, local, Hq, p.heads_kv, D};
  block.dtype = dt;
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
    block.dout = from + 2 * stat_bytes + slot_.q_bytes;
    block.dq = acc_all_ + static_cast<size_t>(r) * slot_.q_elems;  // (B, S_max, Hq, D) partial
    block.q_pos = positions_of(r);
    SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));
  }
  // Each rank's dQ rows summed over every rank's keys, in fp32.
  SEQPAR_RETURN_IF_ERROR(
      comm.reduce_scatter(acc_all_, dq_own_, slot_.q_elems, DType::kF32, ReduceOp::kSum));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({dq_own_, DType::kF32, {B, slot, Hq, D}},
                                                    {0, 0}, {args.dq, dt, {B, local, Hq, D}},
                                                    {0, 0}, local, Hq, target));
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(dkv_, args.dk, dt, shard_.kv_elems, target));
  return buffer_ops::convert_from_float(dkv_ + shard_.kv_elems, args.dv, dt, shard_.kv_elems,
                                        target);
}

}  // namespace seqpar
