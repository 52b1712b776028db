#pragma once
// DecodeAttention: one decoding step over a sharded KvCache. The n new query tokens (positions
// length-n .. length-1 of the cache, appended just before) are replicated on every rank, attend
// causally to every cache token, and every rank ends with the whole (O, LSE) of the n rows.
// Implementations: TreeDecode (runtime/tree_decode.hpp) and the RingDecode baseline
// (runtime/ring_decode.hpp). Made once with its workspace; step() allocates nothing.
#include <memory>

#include "comm/communicator.hpp"
#include "runtime/comm_formula.hpp"
#include "runtime/kv_cache.hpp"

namespace seqpar {

struct DecodeProblem {
  int64_t batch = 1;
  int64_t heads_q = 0;  // Hq % Hkv == 0 (the cache's Hkv)
  int64_t head_dim = 0;
  int64_t q_len = 1;           // n new tokens per step
  float softmax_scale = 0.0f;  // resolved (never 0)
};

class DecodeAttention {
 public:
  virtual ~DecodeAttention() = default;
  // q (B, n, Hq, D) in the cache's dtype; out (B, n, Hq, D) in that dtype; lse (B, Hq, n) fp32.
  virtual Status step(const void* q, const KvCache& cache, void* out, float* lse) = 0;
  virtual size_t workspace_bytes() const = 0;
  // What this rank sends in one step over a cache of `cache.length()` tokens.
  virtual CommVolume expected_comm(const KvCache& cache) const = 0;
  // Calls and bytes so far on communicators the decoder split off the caller's (TreeDecode's
  // node and cross groups): with the caller's counters, what expected_comm() describes.
  virtual CommVolume subgroup_comm() const { return {}; }
};

}  // namespace seqpar
