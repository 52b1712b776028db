// The hybrid scheme's per-rank communication formulas (see hybrid_comm_formula.hpp).
#include "runtime/hybrid_comm_formula.hpp"

#include <algorithm>

#include "partition/head_split.hpp"

namespace seqpar {
namespace {

// The terms of the formulas for one rank.
struct HybridTerms {
  int64_t ulysses = 0;       // U
  int64_t rings = 0;         // R
  int64_t heads_q = 0;       // Hq
  int64_t kv_slices = 0;     // K = max(Hkv, U)
  int64_t q_mine = 0;        // q_u
  int64_t kv_mine = 0;       // kv_u
  int64_t tokens = 0;        // t = B * S_local(r): run u of the group's S/R tokens
  int64_t group_tokens = 0;  // B * S/R
  int64_t row_bytes = 0;     // D * e: one head of one token in the storage dtype
  int64_t kv = 0;            // B * S/R * kv_u * D * e: K or V of the ring's shard
};

bool terms_of(const AttentionProblem& p, int ranks, int ulysses, int rank, HybridTerms* terms) {
  if (ulysses < 1 || ranks % ulysses != 0 || rank < 0 || rank >= ranks) return false;
  StatusOr<std::vector<HeadSlice>> slices = split_heads(p.heads_q, p.heads_kv, ulysses);
  if (!slices.is_ok()) return false;
  const HeadSlice& mine = slices.value()[static_cast<size_t>(rank % ulysses)];
  const int64_t rings = ranks / ulysses;
  const int64_t row_bytes = p.head_dim * static_cast<int64_t>(dtype_size(p.dtype));
  *terms = {ulysses,
            rings,
            p.heads_q,
            std::max<int64_t>(p.heads_kv, ulysses),
            mine.q_count,
            mine.kv_count,
            p.batch * BalancedSplit{p.seq / rings, ulysses}.size(rank % ulysses),
            p.batch * (p.seq / rings),
            row_bytes,
            p.batch * (p.seq / rings) * mine.kv_count * row_bytes};
  return true;
}

CommVolume volume(int64_t all_to_alls, int64_t exchanges, int64_t bytes) {
  CommVolume v;
  v[CommOp::kAllToAll] = all_to_alls;
  v[CommOp::kExchange] = exchanges;
  v.bytes_sent = bytes;
  return v;
}

}  // namespace

CommVolume hybrid_forward_comm(const AttentionProblem& p, int ranks, int ulysses, int rank) {
  HybridTerms h;
  if (!terms_of(p, ranks, ulysses, rank, &h)) return {};
  const int64_t bytes_in =
      h.tokens * h.row_bytes * ((h.heads_q - h.q_mine) + 2 * (h.kv_slices - h.kv_mine));
  const int64_t bytes_out =
      (h.group_tokens - h.tokens) * h.q_mine * (h.row_bytes + static_cast<int64_t>(sizeof(float)));
  const int64_t hops = h.rings - 1;
  return volume(2, hops, bytes_in + bytes_out + hops * 2 * h.kv);
}

CommVolume hybrid_backward_comm(const AttentionProblem& p, int ranks, int ulysses, int rank) {
  HybridTerms h;
  if (!terms_of(p, ranks, ulysses, rank, &h)) return {};
  const int64_t bytes_in =
      h.tokens * h.row_bytes * (3 * (h.heads_q - h.q_mine) + 2 * (h.kv_slices - h.kv_mine)) +
      h.tokens * static_cast<int64_t>(sizeof(float)) * (h.heads_q - h.q_mine);
  const int64_t bytes_out = (h.group_tokens - h.tokens) * h.row_bytes * (h.q_mine + 2 * h.kv_mine);
  const int64_t hops = 2 * (h.rings - 1);
  return volume(2, hops, bytes_in + bytes_out + hops * 2 * h.kv);
}

}  // namespace seqpar
