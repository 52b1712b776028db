#pragma once
// Cost of the head-sharding schemes: Ulysses (runtime/ulysses_attention.cpp) and the Ulysses x
// zigzag hybrid (runtime/hybrid_attention.cpp). Their all-to-alls are blocking, so a phase is
// all-to-all in + compute (Ulysses: one S x S block per rank on its heads; hybrid: the zigzag
// ring over R groups, launch/ring_cost.hpp) + all-to-all out, summed. Each all-to-all sends the
// runtime's own per-peer pieces (runtime/head_all_to_all.hpp), over the link to each peer;
// grouped, one latency per link class it crosses.
#include "launch/cost_model.hpp"
#include "launch/model_parts.hpp"

namespace seqpar {

struct HeadShardedCost {
  PhaseTime forward;
  PhaseTime backward;
  int64_t forward_bytes_max = 0;  // the busiest rank's sends, as the model counts them
  int64_t backward_bytes_max = 0;
  int64_t exchange_send_max = 0;  // the largest all-to-all send buffer of any rank (workspace)
  int64_t exchange_recv_max = 0;  // and receive buffer
  // The same over the forward all-to-alls alone: a forward-only plan's buffers.
  int64_t exchange_send_forward_max = 0;
  int64_t exchange_recv_forward_max = 0;
  int64_t heads_q_max = 0;  // the largest head slice (q, kv) of any rank
  int64_t heads_kv_max = 0;
};

// Ulysses over all P ranks. Requires split_heads(Hq, Hkv, P) to succeed.
StatusOr<HeadShardedCost> ulysses_cost(const ModelInputs& inputs, const KernelTiles& tiles);
// Hybrid with U = candidate.ulysses_degree. Requires a valid grid.
StatusOr<HeadShardedCost> hybrid_cost(const ModelInputs& inputs, const KernelTiles& tiles,
                                      int ulysses);

}  // namespace seqpar
