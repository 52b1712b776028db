// Ring decoding: the baseline tree decoding is compared against in Shyam et al. 2024, Ring
// Attention (Liu et al.) applied to decoding. The queries are replicated; the K/V shards rotate
// round the ring, P-1 hops, each rank sending the block it holds to the next rank while it
// computes on it and merging every block into a running fp32 (O, LSE), so every rank ends with
// the whole result. Per rank and step, with len(r) the tokens rank r holds:
//   P-1 exchanges, sum over hops h = 0..P-2 of 2*B*len(rank-h)*Hkv*D*sizeof(dtype) bytes,
// about 2*B*L*Hkv*D*e*(P-1)/P: it grows with the cache length L, tree's does not.
#include <cstring>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// One arena on the decoder's device.
struct RingDecodeBuffers {
  char* blocks[2] = {nullptr, nullptr};  // (2, B, local capacity, Hkv, D) storage: K then V
  float* out = nullptr;                  // (B, n, Hq, D) fp32 running O
  float* lse = nullptr;                  // (B, Hq, n) fp32 running LSE
  float* kernel_scratch = nullptr;

  void add_to(WorkspaceArena& arena, const DecodeContext& ctx) {
    const AttentionProblem& p = ctx.config.problem;
    const int64_t n = ctx.config.q_len;
    const int64_t capacity = KvCache::local_capacity_for(ctx.cache, ctx.ranks);
    const size_t block =
        static_cast<size_t>(2 * p.batch * capacity * p.heads_kv * p.head_dim) * dtype_size(p.dtype);
    const BlockShape shape{p.batch, n, capacity, p.heads_q, p.heads_kv, p.head_dim};
    for (char*& held : blocks) arena.add(held, block);
    arena.add(out, static_cast<size_t>(p.batch * n * p.heads_q * p.head_dim) * sizeof(float));
    arena.add(lse, static_cast<size_t>(p.batch * p.heads_q * n) * sizeof(float));
    arena.add(kernel_scratch, block_kernel_scratch_bytes(shape, ctx.target(), false));
  }
};

// Rank `rank`'s K and V, packed, when the cache holds `length` tokens.
int64_t block_bytes(const DecodeContext& ctx, int rank, int64_t length) {
  const AttentionProblem& p = ctx.config.problem;
  return 2 * p.batch * KvCache::shard_length(ctx.cache, ctx.ranks, rank, length) * p.heads_kv *
         p.head_dim * static_cast<int64_t>(dtype_size(p.dtype));
}

class RingDecoder final : public Decoder {
 public:
  explicit RingDecoder(const DecodeContext& context) : ctx_(context) {}
  Status prepare() {
    WorkspaceArena arena;
    buf_.add_to(arena, ctx_);
    return arena.allocate(workspace_, ctx_.config.device);
  }

  Status step(const void* q, const KvCache& cache, void* out, float* lse) override;
  size_t workspace_bytes() const override { return workspace_.bytes(); }

 private:
  DecodeContext ctx_;
  WorkspaceBuffer workspace_;
  RingDecodeBuffers buf_;
};

Status RingDecoder::step(const void* q, const KvCache& cache, void* out, float* lse) {
  const AttentionProblem& p = ctx_.config.problem;
  const int64_t n = ctx_.config.q_len;
  const KvCacheShape& c = cache.shape();
  Communicator& comm = *ctx_.comm;
  const int ranks = comm.size(), rank = comm.rank();
  const size_t row = static_cast<size_t>(c.heads_kv * c.head_dim) * dtype_size(c.dtype);
  auto held_bytes = [&](int r) {
    return static_cast<size_t>(block_bytes(ctx_, r, cache.length()));
  };

  // Our shard, packed: K (B, len, Hkv, D) then V (B, len, Hkv, D).
  const int64_t own = cache.local_length();
  const size_t own_rows = static_cast<size_t>(own) * row;
  const KernelTarget target = ctx_.target();
  for (int64_t b = 0; b < c.batch; ++b) {
    const size_t from = static_cast<size_t>(b * cache.local_capacity()) * row;
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(buf_.blocks[0] + b * own_rows,
                                            static_cast<const char*>(cache.k()) + from, own_rows,
                                            target));
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(buf_.blocks[0] + (c.batch + b) * own_rows,
                                            static_cast<const char*>(cache.v()) + from, own_rows,
                                            target));
  }

  BlockForwardParams block;
  block.dtype = c.dtype;
  block.q = q;
  block.out = buf_.out;
  block.lse = buf_.lse;
  block.q_pos = PositionMap::affine(cache.length() - n);
  block.mask = MaskKind::kCausal;
  block.softmax_scale = p.softmax_scale;
  block.scratch = buf_.kernel_scratch;
  const int next = (rank + 1) % ranks, prev = (rank + ranks - 1) % ranks;
  for (int hop = 0; hop < ranks; ++hop) {
    const int source = (rank - hop + ranks) % ranks;  // owner of the block held this hop
    char* held = buf_.blocks[hop % 2];
    Request incoming;
    if (hop + 1 < ranks) {  // post the next block before computing on this one
      const int next_source = (source + ranks - 1) % ranks;
      const P2POp ops[] = {P2POp::send(next, held, held_bytes(source)),
                           P2POp::recv(prev, buf_.blocks[(hop + 1) % 2], held_bytes(next_source))};
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, incoming));
    }
    const int64_t len = cache.local_length_of(source);
    block.shape = {c.batch, n, len, p.heads_q, c.heads_kv, p.head_dim};
    block.k = held;  // (B, len, Hkv, D)
    block.v = held + static_cast<size_t>(c.batch * len) * row;
    block.k_pos = PositionMap::indexed(cache.kernel_positions_of(source));
    block.accumulate = hop > 0;
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target));
    SEQPAR_RETURN_IF_ERROR(comm.wait(incoming));
  }
  const size_t q_elems = static_cast<size_t>(p.batch * n * p.heads_q * p.head_dim);
  SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(buf_.out, out, c.dtype, q_elems, target));
  return buffer_ops::copy(lse, buf_.lse,
                          static_cast<size_t>(p.batch * p.heads_q * n) * sizeof(float), target);
}

StatusOr<size_t> ring_decoder_workspace_bytes(const DecodeContext& context, int /*rank*/) {
  return arena_bytes<RingDecodeBuffers>(context);
}

// P hops, each computing on the held block while it goes on to the next rank.
Status ring_decoder_schedule(const DecodeContext& context, int64_t cache_length,
                             ScheduleSink& out) {
  SEQPAR_RETURN_IF_ERROR(context.check_step_length(cache_length));
  const AttentionProblem& p = context.config.problem;
  const int ranks = context.ranks;
  for (int hop = 0; hop < ranks; ++hop) {
    out.step(StepOverlap::kOverlapped);
    for (int r = 0; r < ranks; ++r) {
      const int source = (r - hop + ranks) % ranks;
      BlockWork rows;
      rows.heads_q = p.heads_q;
      rows.heads_kv = p.heads_kv;
      rows.q_tokens = context.config.q_len;
      rows.k_tokens = KvCache::shard_length(context.cache, ranks, source, cache_length);
      out.compute(r, rows);
      if (hop + 1 < ranks) {
        const Send held{(r + 1) % ranks, block_bytes(context, source, cache_length)};
        out.exchange(r, {&held, 1});
      }
    }
  }
  return Status::ok();
}

}  // namespace

extern constinit const DecoderDescriptor kRingDecoder{
    "ring",
    "the baseline: the cache shards rotate round the ring, P-1 hops overlapped with "
    "compute; bytes grow with the cache length",
    nullptr,
    &make_prepared<RingDecoder, Decoder, DecodeContext>,
    &ring_decoder_workspace_bytes,
    &ring_decoder_schedule};

}  // namespace seqpar
