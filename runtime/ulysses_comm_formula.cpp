// Ulysses' per-rank communication formulas (see ulysses_comm_formula.hpp).
#include "runtime/ulysses_comm_formula.hpp"

#include <algorithm>

#include "partition/head_split.hpp"

namespace seqpar {
namespace {

// The terms of the formulas for one rank.
struct UlyssesTerms {
  int64_t ranks = 0;
  int64_t heads_q = 0;
  int64_t kv_slices = 0;   // K: kv heads summed over all ranks' slices
  int64_t q_mine = 0;      // q_r
  int64_t kv_mine = 0;     // kv_r
  int64_t tokens = 0;      // t = B * S_local(r)
  int64_t all_tokens = 0;  // B * S: the tokens of all ranks
  int64_t row_bytes = 0;   // D * e: one head of one token in the storage dtype
};

bool terms_of(const AttentionProblem& p, int ranks, int rank, UlyssesTerms* terms) {
  StatusOr<std::vector<HeadSlice>> slices = split_heads(p.heads_q, p.heads_kv, ranks);
  if (!slices.is_ok() || rank < 0 || rank >= ranks) return false;
  const HeadSlice& mine = slices.value()[static_cast<size_t>(rank)];
  *terms = {ranks,
            p.heads_q,
            std::max<int64_t>(p.heads_kv, ranks),
            mine.q_count,
            mine.kv_count,
            p.batch * BalancedSplit{p.seq, ranks}.size(rank),
            p.batch * p.seq,
            p.head_dim * static_cast<int64_t>(dtype_size(p.dtype))};
  return true;
}

CommVolume two_all_to_alls(int64_t bytes_in, int64_t bytes_out) {
  CommVolume v;
  v[CommOp::kAllToAll] = 2;
  v.bytes_sent = bytes_in + bytes_out;
  return v;
}

}  // namespace

CommVolume ulysses_forward_comm(const AttentionProblem& p, int ranks, int rank) {
  UlyssesTerms u;
  if (!terms_of(p, ranks, rank, &u)) return {};
  const int64_t bytes_in =
      u.tokens * u.row_bytes * ((u.heads_q - u.q_mine) + 2 * (u.kv_slices - u.kv_mine));
  const int64_t bytes_out =
      (u.all_tokens - u.tokens) * u.q_mine * (u.row_bytes + static_cast<int64_t>(sizeof(float)));
  return two_all_to_alls(bytes_in, bytes_out);
}

CommVolume ulysses_backward_comm(const AttentionProblem& p, int ranks, int rank) {
  UlyssesTerms u;
  if (!terms_of(p, ranks, rank, &u)) return {};
  const int64_t bytes_in =
      u.tokens * u.row_bytes * (2 * (u.heads_q - u.q_mine) + 2 * (u.kv_slices - u.kv_mine)) +
      u.tokens * 2 * static_cast<int64_t>(sizeof(float)) * (u.heads_q - u.q_mine);
  const int64_t bytes_out = (u.all_tokens - u.tokens) * u.row_bytes * (u.q_mine + 2 * u.kv_mine);
  return two_all_to_alls(bytes_in, bytes_out);
}

}  // namespace seqpar
