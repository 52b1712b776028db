// Ulysses attention: plan-time head split and exchange, forward and backward steps.
#include "runtime/ulysses_attention.hpp"

#include <vector>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> UlyssesAttention::create(const SchemeContext& context) {
  SEQPAR_REQUIRE(
      context.device == Device::kHost, StatusCode::kUnsupported, scheme_name(context.kind), " on ",
      device_name(context.device),
      " memory is not supported yet: the schemes' workspace and elementwise work follow the "
      "plan's device, but the communicators do not move device memory yet");
  const AttentionProblem& p = context.problem;
  const int ranks = context.layout.ranks();
  SEQPAR_ASSIGN_OR_RETURN(std::vector<HeadSlice> slices, split_heads(p.heads_q, p.heads_kv, ranks));
  std::unique_ptr<UlyssesAttention> scheme(new UlyssesAttention(context));
  std::vector<int64_t> tokens;  // (P): every rank's tokens (contiguous runs, in rank order)
  for (int r = 0; r < ranks; ++r) tokens.push_back(context.layout.local_seq(r));
  scheme->local_seq_ = tokens[static_cast<size_t>(context.comm->rank())];
  SEQPAR_ASSIGN_OR_RETURN(scheme->exchange_,
                          HeadExchange::create(p, *context.comm, std::move(slices),
                                               std::move(tokens), BackwardCarry::kDelta,
                                               {context.device, context.stream}, context.backward));
  SEQPAR_RETURN_IF_ERROR(scheme->allocate_workspace());
  return std::unique_ptr<Scheme>(std::move(scheme));
}

BlockShape UlyssesAttention::block_shape() const {
  const AttentionProblem& p = ctx_.problem;
  const HeadSlice& mine = exchange_->mine();
  return {p.batch, p.seq, p.seq, mine.q_count, mine.kv_count, p.head_dim};
}

Status UlyssesAttention::allocate_workspace() {
  const AttentionProblem& p = ctx_.problem;
  const HeadSlice& mine = exchange_->mine();
  const size_t q_elems = static_cast<size_t>(p.batch * p.seq * mine.q_count * p.head_dim);
  const size_t kv_elems = static_cast<size_t>(p.batch * p.seq * mine.kv_count * p.head_dim);
  const bool bwd = ctx_.backward;  // false: forward-only, no backward buffers
  WorkspaceArena arena;
  arena.add(acc_q_, q_elems * sizeof(float));
  arena.add(dkv_heads_, bwd ? 2 * kv_elems * sizeof(float) : 0);
  arena.add(delta_local_,
            bwd ? static_cast<size_t>(p.batch * p.heads_q * local_seq_) * sizeof(float) : 0);
  arena.add(kernel_scratch_,
            block_kernel_scratch_bytes(block_shape(), {ctx_.device, ctx_.stream}, bwd));
  return arena.allocate(workspace_, ctx_.device);
}

Status UlyssesAttention::forward(const ForwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  SEQPAR_RETURN_IF_ERROR(exchange_->forward_in(args));

  BlockForwardParams block;
  block.shape = block_shape();
  block.dtype = p.dtype;
  block.q = exchange_->q_heads();
  block.k = exchange_->k_heads();
  block.v = exchange_->v_heads();
  block.out = acc_q_;
  block.lse = exchange_->lse_heads();
  block.q_pos = PositionMap::affine(0, 1);
  block.k_pos = PositionMap::affine(0, 1);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.accumulate = false;
  block.scratch = kernel_scratch_;
  SEQPAR_RETURN_IF_ERROR(run_block_forward(block, {ctx_.device, ctx_.stream}));

  // O goes back rounded once to the storage dtype.
  return exchange_->forward_out(acc_q_, DType::kF32, args);
}

Status UlyssesAttention::backward(const BackwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int64_t B = p.batch, S = p.seq, D = p.head_dim;
  const HeadSlice& mine = exchange_->mine();
  const KernelTarget target{ctx_.device, ctx_.stream};

  // delta (B, Hq, S_local) = rowsum(dO * O) of our tokens, all heads.
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, dt, B, local_seq_, p.heads_q, D,
                                             delta_local_, target));
  SEQPAR_RETURN_IF_ERROR(exchange_->backward_in(args, delta_local_));

  const size_t q_elems = static_cast<size_t>(B * S * mine.q_count * D);
  const size_t kv_elems = static_cast<size_t>(B * S * mine.kv_count * D);
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(acc_q_, q_elems * sizeof(float), target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(dkv_heads_, 2 * kv_elems * sizeof(float), target));
  BlockBackwardParams block;
  block.shape = block_shape();
  block.dtype = dt;
  block.q = exchange_->q_heads();
  block.k = exchange_->k_heads();
  block.v = exchange_->v_heads();
  block.dout = exchange_->dout_heads();
  block.lse = exchange_->lse_heads();
  block.delta = exchange_->delta_heads();
  block.dq = acc_q_;
  block.dk = dkv_heads_;
  block.dv = dkv_heads_ + kv_elems;
  block.q_pos = PositionMap::affine(0, 1);
  block.k_pos = PositionMap::affine(0, 1);
  block.mask = p.mask;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));

  // dQ, dK, dV go back rounded once to the storage dtype.
  return exchange_->backward_out(acc_q_, dkv_heads_, dkv_heads_ + kv_elems, DType::kF32, args);
}

}  // namespace seqpar
