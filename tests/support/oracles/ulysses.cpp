// The Ulysses oracle (tests/support/comm_oracles.hpp).
#include "oracle_parts.hpp"
#include "partition/layout.hpp"

namespace seqpar::oracle {
namespace {

CommVolume ulysses_pass(const AttentionProblem& p, int ranks, int rank, bool backward) {
  HeadTerms h;
  const int64_t tokens = p.batch * BalancedSplit{p.seq, ranks}.size(rank);
  if (!head_terms(p, ranks, rank, tokens, p.batch * p.seq, &h)) return {};
  return backward ? heads_backward(p, h, false) : heads_forward(p, h);
}

}  // namespace

extern constinit const SchemeOracle kUlyssesSchemeOracle{
    [](const Shape& s, int r) { return ulysses_pass(s.problem, s.ranks, r, false); },
    [](const Shape& s, int r) { return ulysses_pass(s.problem, s.ranks, r, true); }};
}  // namespace seqpar::oracle
