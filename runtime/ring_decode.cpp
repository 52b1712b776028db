// RingDecode: K/V shards rotating round the ring, merged into a running (O, LSE).
#include "runtime/ring_decode.hpp"

#include <cstring>

#include "attention/dispatch.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<DecodeAttention>> RingDecode::create(Communicator& comm,
                                                              const DecodeProblem& problem,
                                                              const KvCacheShape& cache) {
  std::unique_ptr<RingDecode> d(new RingDecode(comm, problem));
  const int64_t local_capacity = KvCache::local_capacity_for(cache, comm.size());
  const size_t block =
      static_cast<size_t>(2 * cache.batch * local_capacity * cache.heads_kv * cache.head_dim) *
      dtype_size(cache.dtype);
  const BlockShape shape{problem.batch,   problem.q_len,  local_capacity,
                         problem.heads_q, cache.heads_kv, problem.head_dim};
  WorkspaceArena arena;
  for (char*& held : d->blocks_) arena.add(held, block);
  arena.add(d->out_, static_cast<size_t>(problem.batch * problem.q_len * problem.heads_q *
                                         problem.head_dim) *
                         sizeof(float));
  arena.add(d->lse_,
            static_cast<size_t>(problem.batch * problem.heads_q * problem.q_len) * sizeof(float));
  arena.add(d->kernel_scratch_, block_kernel_scratch_bytes(shape, {Device::kHost, nullptr}, false));
  SEQPAR_RETURN_IF_ERROR(arena.allocate(d->workspace_));
  return std::unique_ptr<DecodeAttention>(std::move(d));
}

size_t RingDecode::block_bytes(const KvCache& cache, int rank) const {
  const KvCacheShape& c = cache.shape();
  return static_cast<size_t>(2 * c.batch * cache.local_length_of(rank) * c.heads_kv * c.head_dim) *
         dtype_size(c.dtype);
}

CommVolume RingDecode::expected_comm(const KvCache& cache) const {
  const int ranks = comm_.size();
  CommVolume v;
  v[CommOp::kExchange] = ranks - 1;
  for (int hop = 0; hop + 1 < ranks; ++hop) {
    v.bytes_sent += static_cast<int64_t>(block_bytes(cache, (comm_.rank() - hop + ranks) % ranks));
  }
  return v;
}

Status RingDecode::step(const void* q, const KvCache& cache, void* out, float* lse) {
  const DecodeProblem& p = problem_;
  const KvCacheShape& c = cache.shape();
  const int ranks = comm_.size(), rank = comm_.rank();
  const size_t row = static_cast<size_t>(c.heads_kv * c.head_dim) * dtype_size(c.dtype);

  // Our shard, packed: K (B, len, Hkv, D) then V (B, len, Hkv, D).
  const int64_t own = cache.local_length();
  const size_t own_rows = static_cast<size_t>(own) * row;
  for (int64_t b = 0; b < c.batch; ++b) {
    const size_t from = static_cast<size_t>(b * cache.local_capacity()) * row;
    std::memcpy(blocks_[0] + b * own_rows, static_cast<const char*>(cache.k()) + from, own_rows);
    std::memcpy(blocks_[0] + (c.batch + b) * own_rows, static_cast<const char*>(cache.v()) + from,
                own_rows);
  }

  BlockForwardParams block;
  block.dtype = c.dtype;
  block.q = q;
  block.out = out_;
  block.lse = lse_;
  block.q_pos = PositionMap::affine(cache.length() - p.q_len);
  block.mask = MaskKind::kCausal;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  const int next = (rank + 1) % ranks, prev = (rank + ranks - 1) % ranks;
  for (int hop = 0; hop < ranks; ++hop) {
    const int source = (rank - hop + ranks) % ranks;  // owner of the block held this hop
    char* held = blocks_[hop % 2];
    Request incoming;
    if (hop + 1 < ranks) {  // post the next block before computing on this one
      const int next_source = (source + ranks - 1) % ranks;
      const P2POp ops[] = {
          P2POp::send(next, held, block_bytes(cache, source)),
          P2POp::recv(prev, blocks_[(hop + 1) % 2], block_bytes(cache, next_source))};
      SEQPAR_RETURN_IF_ERROR(comm_.start_exchange(ops, incoming));
    }
    const int64_t len = cache.local_length_of(source);
    block.shape = {c.batch, p.q_len, len, p.heads_q, c.heads_kv, p.head_dim};
    block.k = held;  // (B, len, Hkv, D)
    block.v = held + static_cast<size_t>(c.batch * len) * row;
    block.k_pos = PositionMap::indexed(cache.positions_of(source));
    block.accumulate = hop > 0;
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, {Device::kHost, nullptr}));
    SEQPAR_RETURN_IF_ERROR(comm_.wait(incoming));
  }
  const size_t q_elems = static_cast<size_t>(p.batch * p.q_len * p.heads_q * p.head_dim);
  convert_from_float(out_, out, c.dtype, q_elems);
  std::memcpy(lse, lse_, static_cast<size_t>(p.batch * p.heads_q * p.q_len) * sizeof(float));
  return Status::ok();
}

}  // namespace seqpar
