#pragma once
// Pieces the closed-form oracles share (tests/support/oracles/): shard sizes, a volume, the head
// terms of the head-sharded all-to-alls, and the tree's all-reduces.
#include <cstdint>

#include "comm_oracles.hpp"

namespace seqpar::oracle {

int64_t e_of(const AttentionProblem& p);  // sizeof(dtype)
// One of K or V of contiguous shard `rank` (striped and zigzag shards are equal, which the same
// split gives).
int64_t kv_bytes(const AttentionProblem& p, int ranks, int rank);
CommVolume volume(CommOp op, int64_t calls, int64_t bytes);

// The head-sharded all-to-alls (Ulysses over all ranks, hybrid in its groups): with t this
// rank's tokens, G the tokens of its group, (q_r, kv_r) its head slice of
// split_heads(Hq, Hkv, U), K = max(Hkv, U), row = D * e:
//   forward in   t row ((Hq - q_r) + 2 (K - kv_r))        out  (G - t) q_r (row + 4)
//   backward in  with delta (Ulysses): t row (2 (Hq - q_r) + 2 (K - kv_r)) + 8 t (Hq - q_r)
//                with O (hybrid):      t row (3 (Hq - q_r) + 2 (K - kv_r)) + 4 t (Hq - q_r)
//   backward out (G - t) row (q_r + 2 kv_r)
struct HeadTerms {
  int64_t q = 0, kv = 0, kv_all = 0, tokens = 0, group_tokens = 0, row = 0;
};
bool head_terms(const AttentionProblem& p, int group_size, int place, int64_t tokens,
                int64_t group_tokens, HeadTerms* terms);  // false: the heads do not split
CommVolume heads_forward(const AttentionProblem& p, const HeadTerms& h);
CommVolume heads_backward(const AttentionProblem& p, const HeadTerms& h, bool carries_out);

// The tree combine of `rows` (batch x seq x heads) rows of D values: an all-reduce of the max of
// LSE, then of O and LSE together, each flat or node reduce-scatter + cross all-reduce + node
// all-gather of ceil(n / R) values.
CommVolume combine(int64_t rows, int64_t head_dim, int ranks, int ranks_per_node);

}  // namespace seqpar::oracle
