// Communication formulas of the ring family (see comm_formula.hpp).
#include "runtime/comm_formula.hpp"

#include "runtime/hybrid_comm_formula.hpp"
#include "runtime/lightseq_schedule.hpp"
#include "runtime/tree_attention.hpp"
#include "runtime/ulysses_comm_formula.hpp"

namespace seqpar {
namespace {

// One of K or V of `rank`'s shard (contiguous shards may differ by a token; striped and zigzag
// shards are equal, which the same split gives).
int64_t kv_bytes(const AttentionProblem& p, int ranks, int rank) {
  const int64_t local = BalancedSplit{p.seq, ranks}.size(rank);
  return p.batch * local * p.heads_kv * p.head_dim * static_cast<int64_t>(dtype_size(p.dtype));
}

// The ring's K, V shifts: at step s (0 <= s < P-1) `rank` passes on the block of rank - s.
CommVolume ring_kv_shifts(const AttentionProblem& p, int ranks, int rank) {
  CommVolume v;
  v[CommOp::kExchange] = ranks - 1;
  for (int step = 0; step + 1 < ranks; ++step) {
    v.bytes_sent += 2 * kv_bytes(p, ranks, (rank - step + ranks) % ranks);
  }
  return v;
}

// Backward's dK, dV shares: at step s (1 <= s < P) `rank` sends its share of the block of rank - s
// to that rank.
CommVolume ring_dkv_shares(const AttentionProblem& p, int ranks, int rank) {
  CommVolume v;
  v[CommOp::kExchange] = ranks - 1;
  for (int step = 1; step < ranks; ++step) {
    v.bytes_sent += 2 * kv_bytes(p, ranks, (rank - step + ranks) % ranks);
  }
  return v;
}

}  // namespace

CommVolume& CommVolume::operator+=(const CommVolume& other) {
  for (size_t i = 0; i < calls.size(); ++i) calls[i] += other.calls[i];
  bytes_sent += other.bytes_sent;
  return *this;
}

CommVolume expected_forward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks, int rank,
                                 int ulysses_degree, int ranks_per_node) {
  switch (scheme) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag:
      return ring_kv_shifts(p, ranks, rank);  // K, V to the next rank
    case SchemeKind::kLightSeq:
      return lightseq_forward_comm(p, ranks, rank);
    case SchemeKind::kUlysses:
      return ulysses_forward_comm(p, ranks, rank);
    case SchemeKind::kTree:
      return tree_forward_comm(p, ranks, ranks_per_node);
    case SchemeKind::kHybrid:
      return hybrid_forward_comm(p, ranks, ulysses_degree, rank);
  }
  return {};
}

CommVolume expected_backward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks, int rank,
                                  int ulysses_degree,
                                  int /*ranks_per_node: tree's backward is flat*/) {
  switch (scheme) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag: {
      // P-1 shifts of K, V plus P-1 dK, dV shares sent to their owners
      CommVolume v = ring_kv_shifts(p, ranks, rank);
      v += ring_dkv_shares(p, ranks, rank);
      return v;
    }
    case SchemeKind::kLightSeq:
      return lightseq_backward_comm(p, ranks, rank);
    case SchemeKind::kUlysses:
      return ulysses_backward_comm(p, ranks, rank);
    case SchemeKind::kTree:
      return tree_backward_comm(p, ranks);
    case SchemeKind::kHybrid:
      return hybrid_backward_comm(p, ranks, ulysses_degree, rank);
  }
  return {};
}

}  // namespace seqpar
