#pragma once
// What each scheme must send, per rank and per layer, as formulas the tests and seqpar-run
// assert against the communicator's counters.
//
// Ring family (ring, striped, zigzag), with kv = B * S_local * Hkv * D * sizeof(dtype) bytes
// for one of K or V:
//   forward   P-1 grouped exchanges, each sending K and V:   (P-1) * 2 * kv bytes
//   backward  P-1 exchanges of K,V again, plus P-1 exchanges each sending this rank's dK,dV
//             share of a block to the block's owner:          2 * (P-1) * 2 * kv bytes
//   dK/dV shares travel in the storage dtype, not fp32 (an fp32 dK/dV ring doubles those bytes
//   for bf16, a known weakness of existing ring implementations, ANCHORS.md); the owner sums
//   them in fp32.
#include <cstdint>

#include "runtime/problem.hpp"

namespace seqpar {

struct CommVolume {
  int64_t exchanges = 0;   // grouped send/recv calls
  int64_t bytes_sent = 0;  // bytes sent by each rank
};

CommVolume expected_forward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks);
CommVolume expected_backward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks);

}  // namespace seqpar
