#pragma once
// KvCache: one rank's shard of a decoding KV cache spread over P ranks, preallocated for a
// maximum length. The prompt's S tokens are contiguous runs of a balanced split (rank r holds run
// r: S/P tokens, one more on the first S % P ranks; the prefill layout, so a prefill's K/V shards
// become the cache as they are). Each new token t >= S is appended to rank t mod P, which starts
// with the first rank of a short run: shards stay within one token of each other, so every rank
// does the same work per decoded token and none becomes the straggler that the max all-reduce
// waits on (appending to the last rank would grow one shard without bound). Every rank knows
// every rank's token positions (a pure function of S, P and the length), which the ring baseline
// needs.
#include <cstdint>
#include <memory>
#include <vector>

#include "attention/dispatch.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "partition/layout.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

struct KvCacheShape {
  int64_t batch = 1;
  int64_t heads_kv = 0;
  int64_t head_dim = 0;
  DType dtype = DType::kF32;
  int64_t prompt = 0;    // S >= P: every shard holds a token
  int64_t capacity = 0;  // the most tokens the whole cache will hold (>= prompt)
};

class KvCache {
 public:
  // The storage lives where `target` says (a device cache: on its device, appended to on its
  // stream; the positions are uploaded once, here).
  static StatusOr<std::unique_ptr<KvCache>> create(const KvCacheShape& shape, int rank, int ranks,
                                                   const KernelTarget& target = {});
  // Tokens each rank's storage holds room for: ceil(capacity / P), the longest shard once the
  // cache is full (shards stay within one token of each other).
  static int64_t local_capacity_for(const KvCacheShape& shape, int ranks) {
    return (shape.capacity + ranks - 1) / ranks;
  }
  // Tokens `rank` holds when the whole cache holds `length` tokens (the prompt's run plus its
  // share of the appended tokens): local_length_of() without a cache.
  static int64_t shard_length(const KvCacheShape& shape, int ranks, int rank, int64_t length);

  const KvCacheShape& shape() const { return shape_; }
  int64_t length() const { return length_; }  // tokens in the whole cache
  int64_t local_capacity() const { return local_capacity_; }
  int64_t local_length_of(int rank) const;  // tokens rank `rank` holds now
  int64_t local_length() const { return local_length_of(rank_); }
  int owner(int64_t token) const;
  // (local_capacity) absolute positions of rank `rank`'s tokens, in its storage order (host).
  const int64_t* positions_of(int rank) const {
    return positions_.data() + static_cast<size_t>(rank * local_capacity_);
  }
  // The same where the kernels run (the cache's memory): what a block's k_pos indexes.
  const int64_t* kernel_positions_of(int rank) const {
    return kernel_positions_ + static_cast<size_t>(rank * local_capacity_);
  }
  const KernelTarget& target() const { return target_; }
  // (B, local_capacity, Hkv, D) storage, in the cache's memory: this rank's keys and values; the
  // first local_length() rows of each batch are valid. Writable to fill the prompt's rows.
  void* k() { return k_; }
  void* v() { return v_; }
  const void* k() const { return k_; }
  const void* v() const { return v_; }

  // Appends n tokens at positions length()..length()+n-1; k_new, v_new (B, n, Hkv, D) storage in
  // the cache's memory, the same on every rank (decoding replicates the new tokens); this rank
  // keeps the ones it owns (a device cache copies on its stream).
  Status append(const void* k_new, const void* v_new, int64_t n);

 private:
  KvCache(const KvCacheShape& shape, int rank, int ranks, const KernelTarget& target)
      : shape_(shape),
        rank_(rank),
        ranks_(ranks),
        target_(target),
        prompt_split_{shape.prompt, ranks},
        length_(shape.prompt) {}

  KvCacheShape shape_;
  int rank_, ranks_;
  KernelTarget target_;
  BalancedSplit prompt_split_;  // the prompt's runs, one per rank
  int64_t length_;
  int64_t local_capacity_ = 0;
  std::vector<int64_t> positions_;  // (P, local_capacity), host
  WorkspaceBuffer storage_;         // on target_.device: k_, v_ and (a device cache) positions
  char* k_ = nullptr;               // (B, local_capacity, Hkv, D) storage
  char* v_ = nullptr;
  int64_t* device_positions_ = nullptr;        // (P, local_capacity), a device cache's
  const int64_t* kernel_positions_ = nullptr;  // positions_ or device_positions_
};

}  // namespace seqpar
