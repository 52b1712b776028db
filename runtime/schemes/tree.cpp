// Tree attention (Shyam et al. 2024), prefill/training form. Contiguous layout: rank r holds
// run r of a balanced split of the S tokens of Q, K, V (S_local = S/P, or one more on the first
// S % P ranks). Every gathered slice is padded to the largest shard, S_max = ceil(S/P) tokens:
// a rank with one token fewer sends a zero row per batch, whose results are dropped (zero rows
// are finite in forward and add exactly nothing to dK, dV in backward, with dO and delta 0).
// Queries are all-gathered; each rank computes the partial (O, LSE) of ALL queries against its own
// K/V (the block kernel with absolute positions, one call per gathered query block; rows its keys
// fully mask come out exact: O 0, LSE -inf); the partials are combined exactly by TreeCombine (an
// all-reduce of the max of LSE, then one packed fp32 all-reduce of numerator and denominator, per
// node when ranks_per_node says the ranks span nodes); each rank keeps its own rows.
//
// Backward: one all-gather of every rank's (LSE, delta, Q, dO); each rank computes dK, dV of its
// own keys against all queries (exact, nothing to reduce) and a partial dQ of all queries against
// its keys, in fp32; a reduce-scatter (sum, fp32) gives each rank the dQ of its rows (flat).
//
// Per rank, q = B*S_max*Hq*D elements, s = B*Hq*S_max, e = sizeof(dtype): forward all_gather Q
// ((P-1) q e), the combine's all-reduces of P s and P (q + s) fp32 values; backward all_gather
// (LSE, delta, Q, dO) ((P-1)(2 s 4 + 2 q e)) and reduce_scatter dQ ((P-1) q 4). GQA: K/V never
// leave their rank, so nothing is replicated.
#include <memory>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/tree_combine.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// The rows a forward combines: every rank's queries, rank-major, as P*B batches of S_max rows.
CombineShape combine_shape(const SchemeContext& ctx) {
  const AttentionProblem& p = ctx.problem;
  return {ctx.layout.ranks() * p.batch, ctx.layout.max_local_seq(), p.heads_q, p.head_dim};
}

// One rank's backward gather slice: lse, delta (fp32), q, dout, each of S_max rows.
size_t pack_bytes_of(const SchemeContext& ctx) {
  const ShardSizes slot = ShardSizes::largest(ctx);
  return 2 * slot.lse_elems * sizeof(float) + 2 * slot.q_bytes;
}

// One arena on the plan's device, beside the combine's; a forward-only plan has no backward
// buffers.
struct TreeBuffers {
  void* q_stage = nullptr;          // (B, S_max, Hq, D) storage: our queries, zero-padded
  void* q_all = nullptr;            // (P, B, S_max, Hq, D) storage: every rank's queries
  float* acc_all = nullptr;         // (P, B, S_max, Hq, D) fp32: partial O (fwd) or dQ (bwd)
  float* lse_all = nullptr;         // (P, B, Hq, S_max) fp32: partial LSE of every query
  char* pack = nullptr;             // (pack bytes): this rank's lse, delta, q, dout, padded
  char* pack_all = nullptr;         // (P, pack bytes): every rank's pack
  float* dq_own = nullptr;          // (B, S_max, Hq, D) fp32: dQ of this rank's rows
  float* dkv = nullptr;             // (2, B, S_local, Hkv, D) fp32: dK then dV of own keys
  float* kernel_scratch = nullptr;  // the block kernels' work area

  void add_to(WorkspaceArena& arena, const SchemeContext& ctx, int rank) {
    const size_t ranks = static_cast<size_t>(ctx.layout.ranks());
    const size_t bwd = ctx.backward ? 1 : 0;
    const ShardSizes own = ShardSizes::of_rank(ctx, rank);
    const ShardSizes slot = ShardSizes::largest(ctx);
    const size_t pack_bytes = bwd * pack_bytes_of(ctx);
    arena.add(q_stage, own.q_elems != slot.q_elems ? slot.q_bytes : 0);
    arena.add(q_all, ranks * slot.q_bytes);
    arena.add(acc_all, ranks * slot.q_elems * sizeof(float));
    arena.add(lse_all, ranks * slot.lse_elems * sizeof(float));
    arena.add(pack, pack_bytes);
    arena.add(pack_all, ranks * pack_bytes);
    arena.add(dq_own, bwd * slot.q_elems * sizeof(float));
    arena.add(dkv, bwd * 2 * own.kv_elems * sizeof(float));
    arena.add(kernel_scratch, shard_kernel_scratch_bytes(ctx));
  }
};

class TreeScheme final : public SchemeBase {
 public:
  explicit TreeScheme(const SchemeContext& context)
      : SchemeBase(context),
        slot_(ShardSizes::largest(context)),
        pack_bytes_(pack_bytes_of(context)),
        local_(context.layout.local_seq(rank_)),
        slot_tokens_(context.layout.max_local_seq()) {}
  Status prepare();

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + combine_->workspace_bytes();
  }
  // The hierarchical combine's node and cross communicators (empty when flat).
  std::span<Communicator* const> subgroups() const override { return combine_->subgroups(); }

 private:
  PositionMap positions_of(int rank) const {  // rank's contiguous tokens
    return PositionMap::affine(ctx_.layout.global_position(rank, 0));
  }
  bool padded() const { return shard_.q_elems != slot_.q_elems; }  // our shard is a token short

  ShardSizes slot_;  // sizes of one gathered slice (B, S_max, ...)
  size_t pack_bytes_ = 0;
  int64_t local_ = 0;        // S_local: this rank's tokens
  int64_t slot_tokens_ = 0;  // S_max: the tokens of one gathered slice
  std::unique_ptr<TreeCombine> combine_;
  TreeBuffers buf_;
};

Status TreeScheme::prepare() {
  SEQPAR_ASSIGN_OR_RETURN(combine_,
                          TreeCombine::create(*ctx_.comm, ctx_.ranks_per_node, combine_shape(ctx_),
                                              {ctx_.device, ctx_.stream}));
  WorkspaceArena arena;
  buf_.add_to(arena, ctx_, rank_);
  SEQPAR_RETURN_IF_ERROR(arena.allocate(workspace_, ctx_.device));
  // Padding rows stay zero: steps overwrite only the rows of our tokens.
  if (padded()) SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.q_stage, slot_.q_bytes, target_));
  return buffer_ops::zero(buf_.pack, ctx_.backward ? pack_bytes_ : 0, target_);
}

Status TreeScheme::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int64_t B = p.batch, Hq = p.heads_q, D = p.head_dim;

  const void* q_send = args.q;  // (B, S_local, Hq, D), or padded to (B, S_max, Hq, D)
  if (padded()) {
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({args.q, dt, {B, local_, Hq, D}}, {0, 0},
                                                      {buf_.q_stage, dt, {B, slot_tokens_, Hq, D}},
                                                      {0, 0}, local_, Hq, target_));
    q_send = buf_.q_stage;
  }
  SEQPAR_RETURN_IF_ERROR(
      comm.all_gather(q_send, buf_.q_all, slot_.q_bytes));  // (P, B, S_max, Hq, D)

  auto block = plan_block_params<BlockForwardParams>(p, buf_.kernel_scratch);
  block.shape = {B, slot_tokens_, local_, Hq, p.heads_kv, D};  // every slice against our keys
  block.k = args.k;  // (B, S_local, Hkv, D): this rank's keys, never sent
  block.v = args.v;
  block.k_pos = positions_of(rank_);
  for (int r = 0; r < comm.size(); ++r) {  // rank r's queries against our keys
    block.q = static_cast<const char*>(buf_.q_all) + static_cast<size_t>(r) * slot_.q_bytes;
    block.out = buf_.acc_all + static_cast<size_t>(r) * slot_.q_elems;    // (B, S_max, Hq, D)
    block.lse = buf_.lse_all + static_cast<size_t>(r) * slot_.lse_elems;  // (B, Hq, S_max)
    block.q_pos = positions_of(r);
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target_));
  }
  SEQPAR_RETURN_IF_ERROR(combine_->combine(buf_.acc_all, buf_.lse_all, rank_ * B, (rank_ + 1) * B));
  // Our rows of our slice: O rounded once to storage, and the LSE.
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {buf_.acc_all + static_cast<size_t>(rank_) * slot_.q_elems,
       DType::kF32,
       {B, slot_tokens_, Hq, D}},
      {0, 0}, {args.out, dt, {B, local_, Hq, D}}, {0, 0}, local_, Hq, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {buf_.lse_all + static_cast<size_t>(rank_) * slot_.lse_elems,
       DType::kF32,
       {B, Hq, slot_tokens_, 1}},
      {0, 0}, {args.lse, DType::kF32, {B, Hq, local_, 1}}, {0, 0}, Hq, local_, target_));
  return Status::ok();
}

Status TreeScheme::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const DType dt = p.dtype;
  const int64_t B = p.batch, Hq = p.heads_q, D = p.head_dim;
  const size_t stat_bytes = slot_.lse_elems * sizeof(float);

  // buf_.pack = [lse (B, Hq, S_max) fp32 | delta (B, Hq, S_max) fp32 | q, dout (B, S_max, Hq, D)
  // storage], our rows of each; padding rows stay zero.
  float* pack_lse = reinterpret_cast<float*>(buf_.pack);
  float* pack_delta = reinterpret_cast<float*>(buf_.pack + stat_bytes);
  char* pack_q = buf_.pack + 2 * stat_bytes;
  char* pack_dout = pack_q + slot_.q_bytes;
  // delta of our rows into buf_.dq_own (free until the reduce-scatter), then into the pack.
  SEQPAR_RETURN_IF_ERROR(
      run_attention_delta(args.out, args.dout, dt, B, local_, Hq, D, buf_.dq_own, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {args.lse, DType::kF32, {B, Hq, local_, 1}}, {0, 0},
      {pack_lse, DType::kF32, {B, Hq, slot_tokens_, 1}}, {0, 0}, Hq, local_, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect(
      {buf_.dq_own, DType::kF32, {B, Hq, local_, 1}}, {0, 0},
      {pack_delta, DType::kF32, {B, Hq, slot_tokens_, 1}}, {0, 0}, Hq, local_, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({args.q, dt, {B, local_, Hq, D}}, {0, 0},
                                                    {pack_q, dt, {B, slot_tokens_, Hq, D}}, {0, 0},
                                                    local_, Hq, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy_grid_rect({args.dout, dt, {B, local_, Hq, D}}, {0, 0},
                                                    {pack_dout, dt, {B, slot_tokens_, Hq, D}},
                                                    {0, 0}, local_, Hq, target_));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(buf_.pack, buf_.pack_all, pack_bytes_));

  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(
      buf_.acc_all, static_cast<size_t>(comm.size()) * slot_.q_elems * sizeof(float), target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.dkv, 2 * shard_.kv_elems * sizeof(float), target_));
  auto block = plan_block_params<BlockBackwardParams>(p, buf_.kernel_scratch);
  block.shape = {B, slot_tokens_, local_, Hq, p.heads_kv, D};
  block.k = args.k;
  block.v = args.v;
  block.dk = buf_.dkv;
  block.dv = buf_.dkv + shard_.kv_elems;
  block.k_pos = positions_of(rank_);
  for (int r = 0; r < comm.size(); ++r) {  // rank r's queries against our keys
    const char* from = buf_.pack_all + static_cast<size_t>(r) * pack_bytes_;
    block.lse = reinterpret_cast<const float*>(from);
    block.delta = reinterpret_cast<const float*>(from + stat_bytes);
    block.q = from + 2 * stat_bytes;
    block.dout = from + 2 * stat_bytes + slot_.q_bytes;
    block.dq = buf_.acc_all + static_cast<size_t>(r) * slot_.q_elems;  // (B, S_max, Hq, D) partial
    block.q_pos = positions_of(r);
    SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target_));
  }
  // Each rank's dQ rows summed over every rank's keys, in fp32.
  SEQPAR_RETURN_IF_ERROR(
      comm.reduce_scatter(buf_.acc_all, buf_.dq_own, slot_.q_elems, DType::kF32, ReduceOp::kSum));
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::copy_grid_rect({buf_.dq_own, DType::kF32, {B, slot_tokens_, Hq, D}}, {0, 0},
                                 {args.dq, dt, {B, local_, Hq, D}}, {0, 0}, local_, Hq, target_));
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(buf_.dkv, args.dk, dt, shard_.kv_elems, target_));
  return buffer_ops::convert_from_float(buf_.dkv + shard_.kv_elems, args.dv, dt, shard_.kv_elems,
                                        target_);
}

StatusOr<size_t> tree_workspace_bytes(const SchemeContext& context, int rank) {
  return arena_bytes<TreeBuffers>(context, rank) +
         TreeCombine::workspace_bytes_for(combine_shape(context), context.layout.ranks(),
                                          context.ranks_per_node);
}

// Every step is blocking: a gather, every rank's queries against our keys, then the combine
// (forward) or the dQ reduce-scatter (backward).
Status tree_schedule(const SchemeContext& context, Pass pass, ScheduleSink& out) {
  const AttentionProblem& p = context.problem;
  const int ranks = context.layout.ranks();
  const ShardSizes slot = ShardSizes::largest(context);
  const bool backward = pass == Pass::kBackward;
  const int layout_id = out.add_layout(context.layout);
  out.step(StepOverlap::kSerial);
  for (int r = 0; r < ranks; ++r) {
    out.collective(r, Collective::kAllGather, RankGroup::all(ranks),
                   static_cast<int64_t>(backward ? pack_bytes_of(context) : slot.q_bytes));
  }
  out.step(StepOverlap::kSerial);
  for (int r = 0; r < ranks; ++r) {
    for (int q = 0; q < ranks; ++q) out.compute(r, {layout_id, q, r, p.heads_q, p.heads_kv});
  }
  if (!backward) {
    TreeCombine::schedule(combine_shape(context), ranks, context.ranks_per_node, out);
    return Status::ok();
  }
  out.step(StepOverlap::kSerial);
  for (int r = 0; r < ranks; ++r) {
    out.collective(r, Collective::kReduceScatter, RankGroup::all(ranks),
                   static_cast<int64_t>(slot.q_elems * sizeof(float)));
  }
  return Status::ok();
}

}  // namespace

extern constinit const SchemeDescriptor kTreeScheme{
    "tree",
    "contiguous runs (any S >= P); queries gathered, partials combined by two all-reduces "
    "(per node when it spans nodes); made for decoding, sends more than a ring in training",
    &layout_of_kind<LayoutKind::kContiguous>,
    nullptr,
    &no_ulysses_degrees,
    false,
    &make_prepared<TreeScheme, Scheme, SchemeContext>,
    &tree_workspace_bytes,
    &tree_schedule};

}  // namespace seqpar
