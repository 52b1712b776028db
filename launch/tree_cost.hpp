#pragma once
// Cost of tree attention (runtime/tree_attention.cpp) and of the two decoders
// (runtime/tree_decode.cpp, runtime/ring_decode.cpp). All of tree's collectives are blocking.
//   tree forward   all-gather Q; every rank computes all P query blocks against its own keys;
//                  the combine: all-reduce of the max LSE, then one packed fp32 all-reduce
//                  (hierarchical over nodes when the plan's ranks_per_node says so)
//   tree backward  all-gather (LSE, delta, Q, dO); dK, dV of own keys and partial dQ of all
//                  queries; reduce-scatter of dQ in fp32 (flat)
//   tree decode    n replicated queries against each rank's L/P cached tokens; the same combine
//                  on n rows
//   ring decode    P steps, each rank computing the n queries against the block it holds while
//                  sending it on (P-1 hops of 2 * B * L/P * Hkv * D * e bytes, overlapped)
#include "launch/cost_model.hpp"
#include "launch/model_parts.hpp"

namespace seqpar {

struct TreeCost {
  PhaseTime forward;
  PhaseTime backward;
};

StatusOr<TreeCost> tree_training_cost(const ModelInputs& inputs, const KernelTiles& tiles);

struct DecodeCost {
  PhaseTime step;
  int64_t bytes_per_rank = 0;  // the formula (tree_decode_comm, or ring decode's)
};

StatusOr<DecodeCost> tree_decode_cost(const ModelInputs& inputs);
StatusOr<DecodeCost> ring_decode_cost(const ModelInputs& inputs);

// Ring decode's bytes per step of the busiest rank over a cache of `cache_tokens` in balanced
// shards (runtime/ring_decode.hpp: P-1 hops of 2 * B * len * Hkv * D * sizeof(dtype), the shards
// of every rank but the next one).
int64_t ring_decode_bytes(const AttentionProblem& p, int ranks, int64_t cache_tokens);

}  // namespace seqpar
