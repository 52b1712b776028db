#pragma once
// RingDecode: the baseline tree decoding is compared against in Shyam et al. 2024, Ring
// Attention (Liu et al.) applied to decoding. The queries are replicated; the K/V shards rotate
// round the ring, P-1 hops, each rank sending the block it holds to the next rank while it
// computes on it and merging every block into a running fp32 (O, LSE), so every rank ends with
// the whole result. Per rank and step, with len(r) the tokens rank r holds:
//   P-1 exchanges, sum over hops h = 0..P-2 of 2*B*len(rank-h)*Hkv*D*sizeof(dtype) bytes,
// about 2*B*L*Hkv*D*e*(P-1)/P: it grows with the cache length L, tree's does not.
#include "attention/block_params.hpp"
#include "core/host_buffer.hpp"
#include "runtime/decode_attention.hpp"

namespace seqpar {

class RingDecode final : public DecodeAttention {
 public:
  static StatusOr<std::unique_ptr<DecodeAttention>> create(Communicator& comm,
                                                           const DecodeProblem& problem,
                                                           const KvCacheShape& cache);
  Status step(const void* q, const KvCache& cache, void* out, float* lse) override;
  size_t workspace_bytes() const override { return workspace_.bytes(); }
  CommVolume expected_comm(const KvCache& cache) const override;

 private:
  RingDecode(Communicator& comm, const DecodeProblem& problem) : comm_(comm), problem_(problem) {}
  size_t block_bytes(const KvCache& cache, int rank) const;  // rank's K and V, packed

  Communicator& comm_;
  DecodeProblem problem_;
  HostBuffer workspace_;
  char* blocks_[2] = {nullptr, nullptr};  // (2, B, local capacity, Hkv, D) storage: K then V
  float* out_ = nullptr;                  // (B, n, Hq, D) fp32 running O
  float* lse_ = nullptr;                  // (B, Hq, n) fp32 running LSE
  float* kernel_scratch_ = nullptr;
};

}  // namespace seqpar
