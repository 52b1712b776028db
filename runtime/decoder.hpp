#pragma once
// Decoder: one decoding step over a sharded KvCache, what a DecodePlan runs
// (runtime/decode_plan.hpp). The n new query tokens (positions length-n .. length-1 of the
// cache, appended just before) are replicated on every rank, attend to every cache token, and
// every rank ends with the whole (O, LSE) of the n rows. The decoders are registered in
// runtime/schemes.def (tree decoding and the ring-decode baseline, runtime/schemes/).
#include <memory>
#include <span>

#include "attention/dispatch.hpp"
#include "comm/communicator.hpp"
#include "runtime/kv_cache.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

// Everything a decoder is built from. config has its softmax scale and capacity resolved.
struct DecodeContext {
  DecodeConfig config;
  KvCacheShape cache;            // the cache's shape, from config
  Communicator* comm = nullptr;  // the caller's (null for schedule and workspace queries)
  int ranks = 1;

  // Where the decoder's kernels and copies run: the config's device and stream.
  KernelTarget target() const { return {config.device, config.stream}; }

  // The context of `resolved` (DecodePlan::resolved) on `ranks` ranks: its cache holds the
  // prompt of problem.seq tokens and room for config.capacity.
  static DecodeContext of(const DecodeConfig& resolved, int ranks, Communicator* comm) {
    const AttentionProblem& p = resolved.problem;
    return {resolved,
            {p.batch, p.heads_kv, p.head_dim, p.dtype, p.seq, resolved.capacity},
            comm,
            ranks};
  }

  // A step's cache length runs from the prompt plus one step's q_len tokens to the capacity.
  Status check_step_length(int64_t cache_length) const {
    SEQPAR_REQUIRE(cache_length >= cache.prompt + config.q_len && cache_length <= cache.capacity,
                   StatusCode::kInvalidArgument, "a decoding step's cache length (", cache_length,
                   ") must lie between the prompt and one step (", cache.prompt + config.q_len,
                   ") and the capacity (", cache.capacity, ")");
    return Status::ok();
  }
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // q (B, n, Hq, D) in the cache's dtype; out (B, n, Hq, D) in that dtype; lse (B, Hq, n) fp32.
  // Collective; allocates nothing.
  virtual Status step(const void* q, const KvCache& cache, void* out, float* lse) = 0;
  virtual size_t workspace_bytes() const = 0;
  // Communicators the decoder split off the caller's (counted there, not on the caller's).
  virtual std::span<Communicator* const> subgroups() const { return {}; }
};

}  // namespace seqpar
