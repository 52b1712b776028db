// Pieces the oracles share (see oracle_parts.hpp).
#include "oracle_parts.hpp"

#include <algorithm>
#include <vector>

#include "partition/head_split.hpp"
#include "partition/layout.hpp"

namespace seqpar::oracle {

int64_t e_of(const AttentionProblem& p) { return static_cast<int64_t>(dtype_size(p.dtype)); }

// One of K or V of contiguous shard `rank` (striped and zigzag shards are equal, which the same
// split gives).
int64_t kv_bytes(const AttentionProblem& p, int ranks, int rank) {
  return p.batch * BalancedSplit{p.seq, ranks}.size(rank) * p.heads_kv * p.head_dim * e_of(p);
}

CommVolume volume(CommOp op, int64_t calls, int64_t bytes) {
  CommVolume v;
  v[op] = calls;
  v.bytes_sent = bytes;
  return v;
}

bool head_terms(const AttentionProblem& p, int group_size, int place, int64_t tokens,
                int64_t group_tokens, HeadTerms* terms) {
  StatusOr<std::vector<HeadSlice>> slices = split_heads(p.heads_q, p.heads_kv, group_size);
  if (!slices.is_ok()) return false;
  const HeadSlice& mine = slices.value()[static_cast<size_t>(place)];
  *terms = {mine.q_count, mine.kv_count, std::max<int64_t>(p.heads_kv, group_size),
            tokens,       group_tokens,  p.head_dim * e_of(p)};
  return true;
}

CommVolume heads_forward(const AttentionProblem& p, const HeadTerms& h) {
  const int64_t in = h.tokens * h.row * ((p.heads_q - h.q) + 2 * (h.kv_all - h.kv));
  const int64_t out = (h.group_tokens - h.tokens) * h.q * (h.row + 4);
  return volume(CommOp::kAllToAll, 2, in + out);
}

CommVolume heads_backward(const AttentionProblem& p, const HeadTerms& h, bool carries_out) {
  const int64_t in = carries_out
                         ? h.tokens * h.row * (3 * (p.heads_q - h.q) + 2 * (h.kv_all - h.kv)) +
                               h.tokens * 4 * (p.heads_q - h.q)
                         : h.tokens * h.row * (2 * (p.heads_q - h.q) + 2 * (h.kv_all - h.kv)) +
                               h.tokens * 8 * (p.heads_q - h.q);
  const int64_t out = (h.group_tokens - h.tokens) * h.row * (h.q + 2 * h.kv);
  return volume(CommOp::kAllToAll, 2, in + out);
}

namespace {

CommVolume all_reduce(int64_t count, int ranks, int ranks_per_node) {
  if (ranks_per_node <= 1 || ranks_per_node >= ranks) {
    return volume(CommOp::kAllReduce, 1, ranks > 1 ? count * 4 : 0);
  }
  const int64_t r = ranks_per_node;
  const int64_t slice = (count + r - 1) / r;
  CommVolume v;
  v[CommOp::kReduceScatter] = 1;
  v[CommOp::kAllReduce] = 1;
  v[CommOp::kAllGather] = 1;
  v.bytes_sent = (r - 1) * slice * 4 + slice * 4 + (r - 1) * slice * 4;
  return v;
}

}  // namespace

// The combine of `rows` (batch x seq x heads) rows of D values: max of LSE, then O and LSE.
CommVolume combine(int64_t rows, int64_t head_dim, int ranks, int ranks_per_node) {
  CommVolume v = all_reduce(rows, ranks, ranks_per_node);
  v += all_reduce(rows * head_dim + rows, ranks, ranks_per_node);
  return v;
}

}  // namespace seqpar::oracle
