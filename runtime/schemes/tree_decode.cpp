// Tree decoding (Shyam et al. 2024). Each rank computes the partial (O, LSE) of the replicated
// queries against its own cache shard, then TreeCombine merges them exactly: one all-reduce of
// the max of LSE and one packed fp32 all-reduce of numerator and denominator (per node with
// ranks_per_node). Per rank and step, flat: all_reduce x2, B*Hq*n*4 + B*n*Hq*(D+1)*4 bytes,
// independent of the cache length.
#include <cstring>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/tree_combine.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// The n new rows of every batch.
CombineShape combine_shape(const DecodeContext& ctx) {
  const AttentionProblem& p = ctx.config.problem;
  return {p.batch, ctx.config.q_len, p.heads_q, p.head_dim};
}

// One arena on the decoder's device beside the combine's.
struct TreeDecodeBuffers {
  float* out = nullptr;             // (B, n, Hq, D) fp32: partial, then combined O
  float* lse = nullptr;             // (B, Hq, n) fp32
  float* kernel_scratch = nullptr;  // block kernel work area for (1, n, local capacity) blocks

  void add_to(WorkspaceArena& arena, const DecodeContext& ctx) {
    const AttentionProblem& p = ctx.config.problem;
    const CombineShape rows = combine_shape(ctx);
    const BlockShape block{
        1,         ctx.config.q_len, KvCache::local_capacity_for(ctx.cache, ctx.ranks),
        p.heads_q, p.heads_kv,       p.head_dim};
    arena.add(out, static_cast<size_t>(rows.out_elems()) * sizeof(float));
    arena.add(lse, static_cast<size_t>(rows.lse_elems()) * sizeof(float));
    arena.add(kernel_scratch, block_kernel_scratch_bytes(block, ctx.target(), false));
  }
};

class TreeDecoder final : public Decoder {
 public:
  explicit TreeDecoder(const DecodeContext& context) : ctx_(context) {}
  Status prepare() {
    SEQPAR_ASSIGN_OR_RETURN(combine_, TreeCombine::create(*ctx_.comm, ctx_.config.ranks_per_node,
                                                          combine_shape(ctx_), ctx_.target()));
    WorkspaceArena arena;
    buf_.add_to(arena, ctx_);
    return arena.allocate(workspace_, ctx_.config.device);
  }

  Status step(const void* q, const KvCache& cache, void* out, float* lse) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + combine_->workspace_bytes();
  }
  std::span<Communicator* const> subgroups() const override { return combine_->subgroups(); }

 private:
  DecodeContext ctx_;
  std::unique_ptr<TreeCombine> combine_;
  WorkspaceBuffer workspace_;
  TreeDecodeBuffers buf_;
};

Status TreeDecoder::step(const void* q, const KvCache& cache, void* out, float* lse) {
  const AttentionProblem& p = ctx_.config.problem;
  const KvCacheShape& c = cache.shape();
  const int64_t n = ctx_.config.q_len;
  const size_t elt = dtype_size(c.dtype);
  const size_t q_batch = static_cast<size_t>(n * p.heads_q * p.head_dim);  // one batch's rows
  const size_t kv_batch = static_cast<size_t>(cache.local_capacity() * c.heads_kv * c.head_dim);

  // The shard is (B, local capacity, Hkv, D): one kernel call per batch over its valid rows.
  BlockForwardParams block;
  block.shape = {1, n, cache.local_length(), p.heads_q, c.heads_kv, p.head_dim};
  block.dtype = c.dtype;
  block.q_pos = PositionMap::affine(cache.length() - n);
  block.k_pos = PositionMap::indexed(cache.kernel_positions_of(ctx_.comm->rank()));
  block.mask = MaskKind::kCausal;
  block.softmax_scale = p.softmax_scale;
  block.scratch = buf_.kernel_scratch;
  for (int64_t b = 0; b < p.batch; ++b) {
    block.q = static_cast<const char*>(q) + static_cast<size_t>(b) * q_batch * elt;
    block.k = static_cast<const char*>(cache.k()) + static_cast<size_t>(b) * kv_batch * elt;
    block.v = static_cast<const char*>(cache.v()) + static_cast<size_t>(b) * kv_batch * elt;
    block.out = buf_.out + static_cast<size_t>(b) * q_batch;        // (1, n, Hq, D)
    block.lse = buf_.lse + static_cast<size_t>(b * p.heads_q * n);  // (1, Hq, n)
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, ctx_.target()));
  }
  SEQPAR_RETURN_IF_ERROR(combine_->combine(buf_.out, buf_.lse, 0, p.batch));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(
      buf_.out, out, c.dtype, static_cast<size_t>(p.batch) * q_batch, ctx_.target()));
  return buffer_ops::copy(
      lse, buf_.lse, static_cast<size_t>(p.batch * p.heads_q * n) * sizeof(float), ctx_.target());
}

StatusOr<size_t> tree_decoder_workspace_bytes(const DecodeContext& context, int /*rank*/) {
  return arena_bytes<TreeDecodeBuffers>(context) +
         TreeCombine::workspace_bytes_for(combine_shape(context), context.ranks,
                                          context.config.ranks_per_node);
}

// Each rank's rows against its shard, then the combine.
Status tree_decoder_schedule(const DecodeContext& context, int64_t cache_length,
                             ScheduleSink& out) {
  SEQPAR_RETURN_IF_ERROR(context.check_step_length(cache_length));
  const AttentionProblem& p = context.config.problem;
  out.step(StepOverlap::kSerial);
  for (int r = 0; r < context.ranks; ++r) {
    BlockWork rows;
    rows.heads_q = p.heads_q;
    rows.heads_kv = p.heads_kv;
    rows.q_tokens = context.config.q_len;
    rows.k_tokens = KvCache::shard_length(context.cache, context.ranks, r, cache_length);
    out.compute(r, rows);
  }
  TreeCombine::schedule(combine_shape(context), context.ranks, context.config.ranks_per_node, out);
  return Status::ok();
}

}  // namespace

extern constinit const DecoderDescriptor kTreeDecoder{
    "tree",
    "each rank's partial against its cache shard, merged by two small all-reduces: "
    "bytes independent of the cache length",
    nullptr,
    &make_prepared<TreeDecoder, Decoder, DecodeContext>,
    &tree_decoder_workspace_bytes,
    &tree_decoder_schedule};

}  // namespace seqpar
