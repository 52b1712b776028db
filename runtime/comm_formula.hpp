#pragma once
// What each scheme must send, per rank and per layer, as formulas the tests and seqpar-run
// assert against the communicator's counters.
//
// Ring family (ring, striped, zigzag), with kv = B * S_local * Hkv * D * sizeof(dtype) bytes
// for one of K or V:
//   forward   P-1 grouped exchanges, each sending K and V:   (P-1) * 2 * kv bytes
//   backward  P-1 exchanges of K,V again, plus P-1 exchanges each sending this rank's dK,dV
//             share of a block to the block's owner:          2 * (P-1) * 2 * kv bytes
//   With uneven contiguous shards (S % P != 0) each transfer carries the kv of the block it
//   moves: forward sum over s = 0..P-2 of 2 * kv(r - s), backward adds s = 1..P-1.
//   dK/dV shares travel in the storage dtype, not fp32 (an fp32 dK/dV ring doubles those bytes
//   for bf16, a known weakness of existing ring implementations, ANCHORS.md); the owner sums
//   them in fp32.
#include <array>
#include <cstdint>

#include "comm/communicator.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

// Calls per op kind and bytes sent by each rank (as the communicators count them,
// comm/communicator.hpp). Barriers are never part of a scheme's formula.
struct CommVolume {
  std::array<int64_t, static_cast<size_t>(CommOp::kCount)> calls{};
  int64_t bytes_sent = 0;

  int64_t& operator[](CommOp op) { return calls[static_cast<size_t>(op)]; }
  int64_t operator[](CommOp op) const { return calls[static_cast<size_t>(op)]; }
  CommVolume& operator+=(const CommVolume& other);
};

// What `rank` of `ranks` sends (schemes whose ranks send different amounts, e.g. lightseq, differ
// by rank; the ring family sends the same from every rank). ulysses_degree is the hybrid's U
// (its layout's ulysses_degree()); the other schemes ignore it.
// ulysses_degree: hybrid's U; ranks_per_node: tree's hierarchy (0: flat). Each counts the
// traffic of the scheme's sub-communicators too (Plan::comm_stats adds them up).
CommVolume expected_forward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks, int rank,
                                 int ulysses_degree = 1, int ranks_per_node = 0);
CommVolume expected_backward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks, int rank,
                                  int ulysses_degree = 1, int ranks_per_node = 0);

}  // namespace seqpar
