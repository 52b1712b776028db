// Ulysses (DeepSpeed-Ulysses) attention: sequence-sharded in and out (contiguous layout), head-
// sharded inside. Forward: one all-to-all turns every rank's Q, K, V tokens into the whole
// sequence for a slice of heads (partition/head_split.hpp), the rank runs the block kernel once
// over the whole sequence for those heads, and a second all-to-all returns O and LSE to the
// tokens' owners. Backward: delta = rowsum(dO * O) is computed at the token owner; Q, dO, K, V,
// LSE and delta go out in one all-to-all, dQ, dK, dV come back in another, and a kv head shared
// by several ranks (Hkv < P) gets its dK, dV shares summed in fp32 at the token owner.
//
// The all-to-alls are runtime/head_exchange.hpp's over the world: uneven head splits are
// all_to_all_v calls whose counts and offsets are fixed at plan creation; pieces travel in the
// storage dtype (LSE and delta in fp32); K/V heads are never replicated to Hq heads, and a kv head
// goes only to the ranks whose q heads read it. Needs Hq >= P.
#include <memory>
#include <vector>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/head_exchange.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// Every rank's tokens: contiguous runs, in rank order.
std::vector<int64_t> tokens_of(const Layout& layout) {
  std::vector<int64_t> tokens;
  for (int r = 0; r < layout.ranks(); ++r) tokens.push_back(layout.local_seq(r));
  return tokens;
}

// This rank's block: its heads over the whole sequence.
BlockShape heads_block(const AttentionProblem& p, const HeadSlice& mine) {
  return {p.batch, p.seq, p.seq, mine.q_count, mine.kv_count, p.head_dim};
}

// The arena beside the exchange's (its heads are this rank's slice, S the whole sequence), on
// the plan's device; regions only backward uses are empty in a forward-only plan.
struct UlyssesBuffers {
  float* acc_q = nullptr;           // (B, S, q_r, D) fp32: O (forward) or dQ (backward)
  float* dkv_heads = nullptr;       // (2, B, S, kv_r, D) fp32: dK then dV of this rank's heads
  float* delta_local = nullptr;     // (B, Hq, S_local) fp32: rowsum(dO * O) of our tokens
  float* kernel_scratch = nullptr;  // the block kernels' work area

  void add_to(WorkspaceArena& arena, const SchemeContext& ctx, const HeadSlice& mine, int rank) {
    const AttentionProblem& p = ctx.problem;
    const size_t q_elems = static_cast<size_t>(p.batch * p.seq * mine.q_count * p.head_dim);
    const size_t kv_elems = static_cast<size_t>(p.batch * p.seq * mine.kv_count * p.head_dim);
    const bool bwd = ctx.backward;
    arena.add(acc_q, q_elems * sizeof(float));
    arena.add(dkv_heads, bwd ? 2 * kv_elems * sizeof(float) : 0);
    arena.add(delta_local, bwd ? ShardSizes::of_rank(ctx, rank).lse_elems * sizeof(float) : 0);
    arena.add(kernel_scratch,
              block_kernel_scratch_bytes(heads_block(p, mine), target_of(ctx), bwd));
  }
};

class UlyssesScheme final : public Scheme {
 public:
  explicit UlyssesScheme(const SchemeContext& context)
      : ctx_(context), local_seq_(context.layout.local_seq(context.comm->rank())) {}
  // The head split and the all-to-alls' counts, then the arena.
  Status prepare() {
    const AttentionProblem& p = ctx_.problem;
    SEQPAR_ASSIGN_OR_RETURN(std::vector<HeadSlice> slices,
                            split_heads(p.heads_q, p.heads_kv, ctx_.layout.ranks()));
    SEQPAR_ASSIGN_OR_RETURN(
        exchange_, HeadExchange::create(p, *ctx_.comm, std::move(slices), tokens_of(ctx_.layout),
                                        BackwardCarry::kDelta, target_of(ctx_), ctx_.backward));
    WorkspaceArena arena;
    buf_.add_to(arena, ctx_, exchange_->mine(), ctx_.comm->rank());
    return arena.allocate(workspace_, ctx_.device);
  }

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + exchange_->workspace_bytes();
  }

 private:
  BlockShape block_shape() const { return heads_block(ctx_.problem, exchange_->mine()); }

  SchemeContext ctx_;
  int64_t local_seq_ = 0;  // S_local
  // The head <-> sequence all-to-alls over the world and this rank's head tensors (S tokens).
  std::unique_ptr<HeadExchange> exchange_;
  WorkspaceBuffer workspace_;
  UlyssesBuffers buf_;
};

Status UlyssesScheme::forward(const ForwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  SEQPAR_RETURN_IF_ERROR(exchange_->forward_in(args));

  auto block = plan_block_params<BlockForwardParams>(p, buf_.kernel_scratch);
  block.shape = block_shape();
  block.q = exchange_->q_heads();
  block.k = exchange_->k_heads();
  block.v = exchange_->v_heads();
  block.out = buf_.acc_q;
  block.lse = exchange_->lse_heads();
  block.q_pos = PositionMap::affine(0, 1);
  block.k_pos = PositionMap::affine(0, 1);
  block.accumulate = false;
  SEQPAR_RETURN_IF_ERROR(run_block_forward(block, {ctx_.device, ctx_.stream}));

  // O goes back rounded once to the storage dtype.
  return exchange_->forward_out(buf_.acc_q, DType::kF32, args);
}

Status UlyssesScheme::backward(const BackwardArgs& args) {
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int64_t B = p.batch, S = p.seq, D = p.head_dim;
  const HeadSlice& mine = exchange_->mine();
  const KernelTarget target{ctx_.device, ctx_.stream};

  // delta (B, Hq, S_local) = rowsum(dO * O) of our tokens, all heads.
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, dt, B, local_seq_, p.heads_q, D,
                                             buf_.delta_local, target));
  SEQPAR_RETURN_IF_ERROR(exchange_->backward_in(args, buf_.delta_local));

  const size_t q_elems = static_cast<size_t>(B * S * mine.q_count * D);
  const size_t kv_elems = static_cast<size_t>(B * S * mine.kv_count * D);
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.acc_q, q_elems * sizeof(float), target));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.dkv_heads, 2 * kv_elems * sizeof(float), target));
  auto block = plan_block_params<BlockBackwardParams>(p, buf_.kernel_scratch);
  block.shape = block_shape();
  block.q = exchange_->q_heads();
  block.k = exchange_->k_heads();
  block.v = exchange_->v_heads();
  block.dout = exchange_->dout_heads();
  block.lse = exchange_->lse_heads();
  block.delta = exchange_->delta_heads();
  block.dq = buf_.acc_q;
  block.dk = buf_.dkv_heads;
  block.dv = buf_.dkv_heads + kv_elems;
  block.q_pos = PositionMap::affine(0, 1);
  block.k_pos = PositionMap::affine(0, 1);
  SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target));

  // dQ, dK, dV go back rounded once to the storage dtype.
  return exchange_->backward_out(buf_.acc_q, buf_.dkv_heads, buf_.dkv_heads + kv_elems, DType::kF32,
                                 args);
}

Status validate_ulysses(const PlanConfig& config, int ranks) {
  return split_heads(config.problem.heads_q, config.problem.heads_kv, ranks).status();
}

StatusOr<size_t> ulysses_workspace_bytes(const SchemeContext& context, int rank) {
  const AttentionProblem& p = context.problem;
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, context.layout.ranks()));
  SEQPAR_ASSIGN_OR_RETURN(const size_t exchange, HeadExchange::workspace_bytes_for(
                                                     p, slices, tokens_of(context.layout), rank,
                                                     BackwardCarry::kDelta, context.backward));
  return exchange + arena_bytes<UlyssesBuffers>(context, slices[static_cast<size_t>(rank)], rank);
}

// The all-to-alls are blocking, so each is a step of its own around the one block per rank.
Status ulysses_schedule(const SchemeContext& context, Pass pass, ScheduleSink& out) {
  const AttentionProblem& p = context.problem;
  const int ranks = context.layout.ranks();
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, ranks));
  const std::vector<int64_t> tokens = tokens_of(context.layout);
  SEQPAR_ASSIGN_OR_RETURN(const Layout whole_sequence,
                          Layout::make(LayoutKind::kContiguous, p.seq, 1));
  const int whole = out.add_layout(whole_sequence);
  std::vector<HeadExchangeSplits> splits;
  for (int r = 0; r < ranks; ++r) {
    SEQPAR_ASSIGN_OR_RETURN(HeadExchangeSplits split,
                            HeadExchangeSplits::of(p, tokens, slices, r, BackwardCarry::kDelta));
    splits.push_back(std::move(split));
  }
  const bool backward = pass == Pass::kBackward;
  const std::vector<RankGroup> groups(static_cast<size_t>(ranks), RankGroup::all(ranks));
  auto all_to_all = [&](AllToAllSplit HeadExchangeSplits::*stage) {
    HeadExchangeSplits::schedule_step(splits, groups, stage, out);
  };
  all_to_all(backward ? &HeadExchangeSplits::backward_in : &HeadExchangeSplits::forward_in);
  out.step(StepOverlap::kSerial);
  for (int r = 0; r < ranks; ++r) {
    const HeadSlice& mine = slices[static_cast<size_t>(r)];
    out.compute(r, {whole, 0, 0, mine.q_count, mine.kv_count});
  }
  all_to_all(backward ? &HeadExchangeSplits::backward_out : &HeadExchangeSplits::forward_out);
  return Status::ok();
}

}  // namespace

extern constinit const SchemeDescriptor kUlyssesScheme{
    "ulysses",
    "contiguous runs in and out, heads split over the ranks inside (Hq >= P): two all-to-alls "
    "a pass, flat in P; best on fast all-to-all links",
    &layout_of_kind<LayoutKind::kContiguous>,
    &validate_ulysses,
    [](int ranks) { return std::vector<int>{ranks}; },
    false,
    &make_prepared<UlyssesScheme, Scheme, SchemeContext>,
    &ulysses_workspace_bytes,
    &ulysses_schedule};

}  // namespace seqpar
