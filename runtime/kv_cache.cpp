// KvCache: a rank's shard of a decoding KV cache (see kv_cache.hpp).
#include "runtime/kv_cache.hpp"

#include <cstring>
#include <new>

#include "runtime/buffer_ops.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<KvCache>> KvCache::create(const KvCacheShape& shape, int rank, int ranks,
                                                   const KernelTarget& target) {
  SEQPAR_REQUIRE(shape.prompt >= ranks, StatusCode::kInvalidArgument, "the KV cache's prompt of ",
                 shape.prompt, " tokens is shorter than the ", ranks,
                 " ranks (every shard needs at least one token)");
  SEQPAR_REQUIRE(shape.capacity >= shape.prompt, StatusCode::kInvalidArgument,
                 "the KV cache's capacity (", shape.capacity, ") is below its prompt (",
                 shape.prompt, ")");
  std::unique_ptr<KvCache> cache(new KvCache(shape, rank, ranks, target));
  const BalancedSplit& split = cache->prompt_split_;
  cache->local_capacity_ = local_capacity_for(shape, ranks);
  try {
    cache->positions_.assign(static_cast<size_t>(ranks * cache->local_capacity_), -1);
  } catch (const std::bad_alloc&) {
    return SEQPAR_FAIL(StatusCode::kOutOfMemory, "no memory for the KV cache's positions");
  }
  for (int r = 0; r < ranks; ++r) {
    int64_t* pos = cache->positions_.data() + static_cast<size_t>(r * cache->local_capacity_);
    for (int64_t i = 0; i < split.size(r); ++i) pos[i] = split.begin(r) + i;
    int64_t i = split.size(r);
    for (int64_t t = shape.prompt; t < shape.capacity; ++t) {
      if (t % ranks == r) pos[i++] = t;
    }
  }
  const size_t bytes =
      static_cast<size_t>(shape.batch * cache->local_capacity_ * shape.heads_kv * shape.head_dim) *
      dtype_size(shape.dtype);
  const bool on_device = target.device != Device::kHost;
  const size_t positions_bytes = cache->positions_.size() * sizeof(int64_t);
  WorkspaceArena arena;
  arena.add(cache->k_, bytes);
  arena.add(cache->v_, bytes);
  arena.add(cache->device_positions_, on_device ? positions_bytes : 0);
  SEQPAR_RETURN_IF_ERROR(arena.allocate(cache->storage_, target.device));
  cache->kernel_positions_ = on_device ? cache->device_positions_ : cache->positions_.data();
  if (on_device) {  // once, on the stream; positions_ lives as long as the cache
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(cache->device_positions_, cache->positions_.data(),
                                            positions_bytes, target));
  }
  return cache;
}

int KvCache::owner(int64_t token) const {
  return static_cast<int>(token < shape_.prompt ? prompt_split_.part_of(token) : token % ranks_);
}

int64_t KvCache::shard_length(const KvCacheShape& shape, int ranks, int rank, int64_t length) {
  const int64_t fresh = length - shape.prompt;  // appended tokens, shape.prompt + j for j < fresh
  const int64_t first = ((rank - shape.prompt) % ranks + ranks) % ranks;  // rank's first j
  return BalancedSplit{shape.prompt, ranks}.size(rank) +
         (first < fresh ? (fresh - 1 - first) / ranks + 1 : 0);
}

int64_t KvCache::local_length_of(int rank) const {
  return shard_length(shape_, ranks_, rank, length_);
}

Status KvCache::append(const void* k_new, const void* v_new, int64_t n) {
  SEQPAR_REQUIRE(length_ + n <= shape_.capacity, StatusCode::kOutOfMemory, "the KV cache holds ",
                 shape_.capacity, " tokens; appending ", n, " to ", length_, " exceeds it");
  const size_t row =
      static_cast<size_t>(shape_.heads_kv * shape_.head_dim) * dtype_size(shape_.dtype);
  int64_t local = local_length();
  for (int64_t j = 0; j < n; ++j) {
    if (owner(length_ + j) != rank_) continue;
    for (int64_t b = 0; b < shape_.batch; ++b) {
      const size_t from = static_cast<size_t>(b * n + j) * row;
      const size_t to = static_cast<size_t>(b * local_capacity_ + local) * row;
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::copy(k_ + to, static_cast<const char*>(k_new) + from, row, target_));
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::copy(v_ + to, static_cast<const char*>(v_new) + from, row, target_));
    }
    ++local;
  }
  length_ += n;
  return Status::ok();
}

}  // namespace seqpar
