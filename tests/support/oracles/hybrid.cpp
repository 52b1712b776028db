// The hybrid oracle (tests/support/comm_oracles.hpp).
#include "oracle_parts.hpp"
#include "partition/layout.hpp"

namespace seqpar::oracle {
namespace {

// Hybrid adds its zigzag ring across the R groups on the slice's kv heads: R-1 K, V shifts
// forward, and as many dK, dV shares backward, each 2 kv with kv = B (S/R) kv_u D e.
CommVolume hybrid_pass(const AttentionProblem& p, int ranks, int ulysses, int rank, bool backward) {
  if (ulysses < 1 || ranks % ulysses != 0) return {};
  const int rings = ranks / ulysses;
  const int place = rank % ulysses;
  const int64_t group_tokens = p.batch * (p.seq / rings);
  const int64_t tokens = p.batch * BalancedSplit{p.seq / rings, ulysses}.size(place);
  HeadTerms h;
  if (!head_terms(p, ulysses, place, tokens, group_tokens, &h)) return {};
  CommVolume v = backward ? heads_backward(p, h, true) : heads_forward(p, h);
  const int64_t hops = (backward ? 2 : 1) * (rings - 1);
  v += volume(CommOp::kExchange, hops, hops * 2 * group_tokens * h.kv * h.row);
  return v;
}

}  // namespace

extern constinit const SchemeOracle kHybridSchemeOracle{
    [](const Shape& s, int r) { return hybrid_pass(s.problem, s.ranks, s.ulysses, r, false); },
    [](const Shape& s, int r) { return hybrid_pass(s.problem, s.ranks, s.ulysses, r, true); }};
}  // namespace seqpar::oracle
