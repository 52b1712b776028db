// The ring, striped and zigzag oracle (tests/support/comm_oracles.hpp): forward, sum over
// s = 0..P-2 of 2 kv(r - s); backward adds the dK, dV shares, sum over s = 1..P-1 of 2 kv(r - s).
#include "oracle_parts.hpp"

namespace seqpar::oracle {
namespace {

CommVolume ring_forward(const AttentionProblem& p, int ranks, int rank) {
  int64_t bytes = 0;
  for (int s = 0; s + 1 < ranks; ++s) bytes += 2 * kv_bytes(p, ranks, (rank - s + ranks) % ranks);
  return volume(CommOp::kExchange, ranks - 1, bytes);
}

CommVolume ring_backward(const AttentionProblem& p, int ranks, int rank) {
  CommVolume v = ring_forward(p, ranks, rank);
  int64_t shares = 0;
  for (int s = 1; s < ranks; ++s) shares += 2 * kv_bytes(p, ranks, (rank - s + ranks) % ranks);
  v += volume(CommOp::kExchange, ranks - 1, shares);
  return v;
}

// Ring, striped and zigzag send the same: their layouts differ in which tokens, not how many.
constexpr SchemeOracle kRingFamilyOracle{
    [](const Shape& s, int r) { return ring_forward(s.problem, s.ranks, r); },
    [](const Shape& s, int r) { return ring_backward(s.problem, s.ranks, r); }};

}  // namespace

extern constinit const SchemeOracle kRingSchemeOracle = kRingFamilyOracle;
extern constinit const SchemeOracle kStripedSchemeOracle = kRingFamilyOracle;
extern constinit const SchemeOracle kZigzagSchemeOracle = kRingFamilyOracle;

}  // namespace seqpar::oracle
