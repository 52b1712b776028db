#pragma once
// TreeDecode: tree attention for decoding (Shyam et al. 2024). Each rank computes the partial
// (O, LSE) of the replicated queries against its own cache shard, then TreeCombine merges them
// exactly: one all-reduce of the max of LSE and one packed fp32 all-reduce of numerator and
// denominator (per node with ranks_per_node). Per rank and step, flat:
//   all_reduce x2: B*Hq*n*4 + B*n*Hq*(D+1)*4 bytes, independent of the cache length.
#include "attention/block_params.hpp"
#include "runtime/decode_attention.hpp"
#include "runtime/tree_combine.hpp"

namespace seqpar {

CommVolume tree_decode_comm(const DecodeProblem& p, int ranks, int ranks_per_node);

class TreeDecode final : public DecodeAttention {
 public:
  // Collective over `comm` (splits it when hierarchical).
  static StatusOr<std::unique_ptr<DecodeAttention>> create(Communicator& comm,
                                                           const DecodeProblem& problem,
                                                           const KvCacheShape& cache,
                                                           int ranks_per_node);
  Status step(const void* q, const KvCache& cache, void* out, float* lse) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + combine_->workspace_bytes();
  }
  CommVolume expected_comm(const KvCache& cache) const override;
  CommVolume subgroup_comm() const override { return combine_->subgroup_comm(); }

 private:
  TreeDecode(Communicator& comm, const DecodeProblem& problem, int ranks_per_node)
      : comm_(comm), problem_(problem), ranks_per_node_(ranks_per_node) {}

  Communicator& comm_;
  DecodeProblem problem_;
  int ranks_per_node_;
  std::unique_ptr<TreeCombine> combine_;
  HostBuffer workspace_;
  float* out_ = nullptr;             // (B, n, Hq, D) fp32: partial, then combined O
  float* lse_ = nullptr;             // (B, Hq, n) fp32
  float* kernel_scratch_ = nullptr;  // block kernel work area for (1, n, local capacity) blocks
};

}  // namespace seqpar
