#pragma once
// Cost of runtime/ring_attention.cpp's step loops (ring, striped, zigzag, and the ring inside a
// hybrid), in lock step over the ring's n members:
//   forward   step s = 0..n-1: member i computes its queries against the block of member i-s
//             while the K, V it holds go to member i+1 (posted before the compute, none at the
//             last step): max(compute, comm) per step.
//   backward  the same K, V shifts; the dK, dV share of step s >= 1 goes to the block's owner
//             i-s after step s's compute and is waited after step s+1's, so it shares step
//             s+1's window with that step's K, V shift; the last share is exposed.
#include <vector>

#include "launch/model_parts.hpp"
#include "launch/topology.hpp"

namespace seqpar {

struct RingCostInput {
  const Topology* topology = nullptr;
  ComputeModel compute;
  KernelTiles tiles;
  const Layout* layout = nullptr;  // the ring's layout over its n members
  int64_t heads_q = 0;             // the ring's heads (a hybrid rank's slice)
  int64_t heads_kv = 0;
  MaskKind mask = MaskKind::kCausal;
  int64_t dtype_bytes = 2;
  std::vector<int> members;  // (n): the global rank at each ring position
};

struct RingCost {
  PhaseTime forward;
  PhaseTime backward;
  int64_t forward_bytes_max = 0;  // what the busiest member sends (the formula's bytes)
  int64_t backward_bytes_max = 0;
};

RingCost ring_engine_cost(const RingCostInput& input);

}  // namespace seqpar
