// The tree attention oracle (tests/support/comm_oracles.hpp).
#include "oracle_parts.hpp"
#include "partition/layout.hpp"

namespace seqpar::oracle {
namespace {

// q = B S_max Hq D, s = B Hq S_max: forward all_gather Q ((P-1) q e) and the combine of P s
// rows; backward all_gather (LSE, delta, Q, dO) ((P-1) (2 s 4 + 2 q e)), reduce_scatter dQ
// ((P-1) q 4).
CommVolume tree_forward(const AttentionProblem& p, int ranks, int ranks_per_node) {
  const int64_t slot = BalancedSplit{p.seq, ranks}.max_size();
  const int64_t q = p.batch * slot * p.heads_q * p.head_dim;
  CommVolume v = volume(CommOp::kAllGather, 1, (ranks - 1) * q * e_of(p));
  v += combine(ranks * p.batch * slot * p.heads_q, p.head_dim, ranks, ranks_per_node);
  return v;
}

CommVolume tree_backward(const AttentionProblem& p, int ranks) {
  const int64_t slot = BalancedSplit{p.seq, ranks}.max_size();
  const int64_t q = p.batch * slot * p.heads_q * p.head_dim;
  const int64_t s = p.batch * p.heads_q * slot;
  CommVolume v = volume(CommOp::kAllGather, 1, (ranks - 1) * (2 * s * 4 + 2 * q * e_of(p)));
  v += volume(CommOp::kReduceScatter, 1, (ranks - 1) * q * 4);
  return v;
}

}  // namespace

// Every rank of the tree sends the same; its backward is flat.
extern constinit const SchemeOracle kTreeSchemeOracle{
    [](const Shape& s, int) { return tree_forward(s.problem, s.ranks, s.ranks_per_node); },
    [](const Shape& s, int) { return tree_backward(s.problem, s.ranks); }};

}  // namespace seqpar::oracle
