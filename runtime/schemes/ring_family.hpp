#pragma once
// The ring engine: ring (contiguous), striped and zigzag are this one engine over different
// layouts, and the hybrid runs it across its groups. Each step a rank computes its queries
// against the K/V block it holds, with the block's absolute positions, while the next block is
// already in flight; the causal structure (the diagonal, striped's shifted diagonal, zigzag's
// half blocks) follows from the block kernel's position rule and its tile skipping, with no mask
// logic here.
//
// Backward rings K/V again. At step s a rank computes its share of dK/dV for the block it holds
// and sends that share straight to the block's owner (rank r - s), while receiving a share of
// its own block from rank r + s; each step is a permutation, overlapped with the next step's
// compute. The owner sums the shares in fp32, so every share is rounded to the storage dtype
// once, instead of a running sum being rounded at each of P hops (the travelling-accumulator
// design of other ring implementations), and P-1 transfers go out instead of P.
//
// Per rank and layer, with kv(j) = B * S_local(j) * Hkv * D * sizeof(dtype) bytes (one of K or V
// of rank j's block): forward P-1 exchanges, at step s sending K and V of the block of rank r - s
// (2 kv(r - s)); backward the same shifts plus P-1 exchanges, at step s >= 1 sending the dK, dV
// share of the block of rank r - s to it (2 kv(r - s)).
#include <memory>
#include <span>

#include "runtime/schedule.hpp"
#include "runtime/scheme.hpp"

namespace seqpar {

// The engine over context.comm, whose ranks hold context.layout's shards in rank order.
StatusOr<std::unique_ptr<Scheme>> create_ring_engine(const SchemeContext& context);
StatusOr<size_t> ring_engine_workspace_bytes(const SchemeContext& context, int rank);

// One ring of the engine: ring position i is global rank members.at(i) and holds shard i of the
// ring's layout, on a slice of the heads.
struct RingLane {
  RankGroup members;
  int64_t heads_q = 0;
  int64_t heads_kv = 0;
};

// The engine's steps in `pass` for rings that run side by side in lock step over one layout
// (declared in `out` as layout_id): one ring over all ranks for the ring family, one per place
// of the hybrid's groups.
void ring_engine_schedule(const AttentionProblem& p, const Layout& layout, int layout_id,
                          std::span<const RingLane> lanes, Pass pass, ScheduleSink& out);

}  // namespace seqpar
