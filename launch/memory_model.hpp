#pragma once
// Memory per rank of a candidate: the rank's shards (what the caller holds: inputs, outputs and,
// for training, gradients) plus the plan's workspace, estimated from the buffers each scheme
// allocates (runtime/*_attention.cpp's allocate_workspace, summed without alignment padding).
// A forward-only phase (prefill, or train without backward) runs a forward-only plan
// (PlanConfig::backward = false), whose workspace leaves out the buffers only backward uses.
// A test compares the workspace with Plan::workspace_bytes() on small problems.
//   ring family   K,V receive x2, dK,dV send + receive (storage); O/dQ accumulator, dK,dV share
//                 and total (fp32); delta; kernel scratch
//   lightseq      the ring's buffers plus Q (+dO, LSE, delta) receive x2, partials (fp32) x2,
//                 a dQ share
//   tree          every rank's Q (storage) and partial O/dQ (fp32) and LSE; the backward gather
//                 pack for every rank; dQ and dK,dV (fp32); the combine's max and packed buffers
//   ulysses       the head tensors over the whole sequence (Q, K, V, dO storage; LSE, delta;
//                 O/dQ and dK,dV fp32); the largest all-to-all send and receive buffers
//   hybrid        the group's head tensors over S/R tokens, the all-to-all buffers, dQ, dK, dV
//                 heads (storage), and the inner zigzag ring's workspace on those heads
//   decode        the cache shard (K, V) and the step's small buffers
#include <cstdint>

#include "launch/cost_model.hpp"
#include "launch/head_sharded_cost.hpp"

namespace seqpar {

struct MemoryEstimate {
  int64_t shards = 0;
  int64_t workspace = 0;
  int64_t total() const { return shards + workspace; }
};

// `exchange`: the head-sharded cost of the candidate (ulysses, hybrid), for its all-to-all
// buffers and head slices; null for the other schemes.
MemoryEstimate memory_per_rank(const ModelInputs& inputs, const Candidate& candidate,
                               const HeadShardedCost* exchange);

}  // namespace seqpar
