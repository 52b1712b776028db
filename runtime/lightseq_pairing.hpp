#pragma once
// LightSeq's load-balanced DistAttn pairing (Li et al. 2023) for the causal mask over the
// contiguous layout: which block pair each rank computes at each step, and where K/V and queries
// go. The scheme's step loops, workspace and schedule are runtime/schemes/lightseq.cpp.
//
// Block pairs (i, j), j <= i: query block i (rank i's tokens) against kv block j. Plain ring
// computes pair (i, i - t) on rank i at step t, so rank r does r + 1 pairs and early ranks idle.
// Here step t (0 <= t <= P/2) keeps ring's pairs (i, i - t) on their query owners i >= t, and
// the t ranks m < t, which have no causal work left, each help a late rank i = P - t + m by
// computing pair (P - t + m, m) against their own K/V: ring step P - t folded into step t. So:
//   - K/V of rank j go to rank j + t (the query owner of pair (j + t, j)),
//   - queries of rank i >= P - t go to helper i - (P - t), which sends back the partial (O, LSE)
//     (forward) or dQ share (backward); its dK/dV share stays home (the K/V are its own),
//   - the query owner of (i, i - t) sends the dK/dV share of block i - t back to rank i - t.
// Pairs of difference 0..P/2 run on their query owners, differences P/2+1..P-1 on helpers:
// every causal pair exactly once, in P/2 + 1 steps. Odd P: (P + 1) / 2 pairs on every rank.
// Even P: step P/2 has no helpers (ring steps P/2 and P - P/2 coincide), so ranks < P/2 do P/2
// pairs and the others P/2 + 1.
#include <cstddef>
#include <vector>

namespace seqpar {

// One rank's part of one step. Ranks are the owners of the blocks with the same index.
struct LightSeqRankStep {
  int q_block = -1;   // the pair computed this step: query block (-1: idle)
  int kv_block = -1;  // and kv block
  int kv_from = -1;   // rank whose K/V arrive for this step's pair (-1: own K/V or idle)
  int kv_to = -1;     // rank this rank's K/V go to this step (-1: none)
  int q_from = -1;    // rank whose queries arrive (this rank helps it; results go back to it)
  int q_to = -1;      // rank this rank's queries go to (it helps this rank; results come back)
  bool computes() const { return q_block >= 0; }
};

struct LightSeqPairing {
  int ranks = 0;
  std::vector<std::vector<LightSeqRankStep>> steps;  // (steps, P)
  const LightSeqRankStep& at(int step, int rank) const {
    return steps[static_cast<size_t>(step)][static_cast<size_t>(rank)];
  }
};

LightSeqPairing lightseq_pairing(int ranks);

}  // namespace seqpar
