#pragma once
// DecodePlan: decoding across ranks, made once per (problem, decoder, communicator). It owns
// this rank's shard of a KV cache (runtime/kv_cache.hpp) and a decoder (runtime/decoder.hpp:
// tree decoding or the ring baseline, registered in runtime/schemes.def); then, per generated
// token, append() the new tokens' K and V (every rank gets them all and keeps its own) and step()
// attends the new queries to the whole cache.
//
// create() is collective, as Plan::create is: every rank calls it with its config; ranks that
// disagree fail at once with the field and the ranks named, the config is validated (the same
// verdict on every rank), and a failed allocation on one rank fails create() on every rank.
// step() is collective and allocates nothing; any failure in it aborts the group.
//
//   DecodeConfig config;                          // problem.seq: the prompt's tokens
//   auto plan = DecodePlan::create(config, comm);
//   // fill plan->cache().k(), v() with this rank's prompt rows (cache().positions_of(rank))
//   plan->append(k_new, v_new, n);                // (B, n, Hkv, D): the new tokens, every rank
//   plan->step(q, out, lse);                      // (B, n, Hq, D) -> out, lse (B, Hq, n)
#include <memory>

#include "comm/communicator.hpp"
#include "runtime/decoder.hpp"
#include "runtime/kv_cache.hpp"
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"

namespace seqpar {

class DecodePlan {
 public:
  static StatusOr<std::unique_ptr<DecodePlan>> create(const DecodeConfig& config,
                                                      Communicator& comm);
  // The rules a decode config must meet on `ranks` ranks (no communication): the attention
  // problem's, a prompt of at least one token per rank, q_len >= 1, a capacity that holds the
  // prompt and one step, ranks per node dividing the ranks, kernels for the device's dtype and
  // head dim, a registered decoder and its own rules (DecoderDescriptor::validate). A device plan
  // orders its work on config.stream, which it sets on the communicator.
  static Status validate(const DecodeConfig& config, int ranks);
  // `config` with its defaults resolved (softmax scale, capacity, the causal mask), as a plan
  // holds it.
  static DecodeConfig resolved(const DecodeConfig& config);

  const DecodeConfig& config() const { return context_.config; }  // resolved
  KvCache& cache() { return *cache_; }
  const KvCache& cache() const { return *cache_; }
  Communicator& comm() const { return *context_.comm; }

  // Appends n new tokens: k_new, v_new (B, n, Hkv, D) storage, the same on every rank; this rank
  // keeps the ones it owns. Local (no communication).
  Status append(const void* k_new, const void* v_new, int64_t n);
  // One decoding step for the last q_len tokens of the cache: q (B, q_len, Hq, D), replicated;
  // out (B, q_len, Hq, D) and lse (B, Hq, q_len) fp32, the same on every rank. Collective.
  // Exactly q_len tokens must have been appended since the previous step (kInvalidArgument).
  Status step(const void* q, void* out, float* lse);

  size_t workspace_bytes() const { return decoder_->workspace_bytes(); }  // besides the cache
  // What this rank's communicators count in one step at the cache's current length: the
  // decoder's schedule, summed.
  StatusOr<CommVolume> expected_step_comm() const;
  // This rank's counters: the caller's communicator plus the decoder's subgroups.
  CommStats comm_stats() const;
  void reset_comm_stats();

 private:
  DecodePlan(DecodeContext context, std::unique_ptr<KvCache> cache,
             std::unique_ptr<Decoder> decoder)
      : context_(std::move(context)), cache_(std::move(cache)), decoder_(std::move(decoder)) {}
  DecodeContext context_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<Decoder> decoder_;
  int64_t appended_ = 0;  // tokens appended since the last step
};

}  // namespace seqpar
