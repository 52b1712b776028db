#pragma once
// The hybrid scheme's communication per rank and layer, the group all-to-alls and the ring
// across groups together (asserted against the plan's and its subgroups' counters). Rank
// r = g*U + u owns the head slice (q_u, kv_u) of split_heads(Hq, Hkv, U); with t = B * S_local(r)
// (run u of a balanced split of the group's S/R tokens), G = B * S/R, e = sizeof(dtype), K =
// max(Hkv, U) (the kv heads of all slices together) and kv = B * (S/R) * kv_u * D * e (one of K or
// V of the ring's shard):
//   forward   2 all_to_all calls in the group (Ulysses' forward on the group's S/R tokens)
//     in   Q, K, V pieces for the other places' heads:       t*D*e * ((Hq - q_u) + 2*(K - kv_u))
//     out  O (storage) + LSE (fp32) of r's heads:             (G - t) * q_u * (D*e + 4)
//             + R-1 ring exchanges across the groups:         (R-1) * 2 * kv
//   backward  2 all_to_all calls in the group
//     in   Q, dO, O pieces, K, V pieces, LSE (fp32):         t*D*e * (3*(Hq - q_u) + 2*(K - kv_u))
//                                                            + t * 4 * (Hq - q_u)
//     out  dQ, dK, dV shares (storage):                      (G - t) * D*e * (q_u + 2*kv_u)
//             + 2*(R-1) ring exchanges (K, V shifts and dK, dV shares):  2*(R-1) * 2 * kv
// O travels in backward instead of Ulysses' delta because the ring computes delta itself.
#include "runtime/comm_formula.hpp"

namespace seqpar {

// Empty (no calls, no bytes) when the grid does not fit (U does not divide P, or Hq < U).
CommVolume hybrid_forward_comm(const AttentionProblem& p, int ranks, int ulysses, int rank);
CommVolume hybrid_backward_comm(const AttentionProblem& p, int ranks, int ulysses, int rank);

}  // namespace seqpar
