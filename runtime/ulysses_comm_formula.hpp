#pragma once
// Ulysses' communication per rank and layer (asserted against the communicators' counters).
// Rank r owns the head slice (q_r, kv_r) of partition/head_split.hpp. With t = B * S_local(r)
// (shards may differ by a token when S % P != 0), T = B * S, e = sizeof(dtype), and K = the kv
// heads of all slices together = max(Hkv, P) (a kv head shared by several ranks counts once per
// rank):
//   forward   2 all_to_all calls
//     in   Q, K, V pieces for every other rank's heads:      t*D*e * ((Hq - q_r) + 2*(K - kv_r))
//     out  O (storage dtype) + LSE (fp32) of r's heads
//          for every other rank's tokens:                    (T - t) * q_r * (D*e + 4)
//   backward  2 all_to_all calls
//     in   Q, dO, K, V pieces, LSE and delta (fp32):         t*D*e * (2*(Hq - q_r) + 2*(K - kv_r))
//                                                            + t * 8 * (Hq - q_r)
//     out  dQ, dK, dV shares (storage dtype):                (T - t) * D*e * (q_r + 2*kv_r)
// With uneven head splits, ranks send different amounts: the formula is per rank.
#include "runtime/comm_formula.hpp"

namespace seqpar {

// Empty (no calls, no bytes) when the heads cannot be split over `ranks` (Hq < P).
CommVolume ulysses_forward_comm(const AttentionProblem& p, int ranks, int rank);
CommVolume ulysses_backward_comm(const AttentionProblem& p, int ranks, int rank);

}  // namespace seqpar
