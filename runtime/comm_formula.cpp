// Communication formulas of the ring family (see comm_formula.hpp).
#include "runtime/comm_formula.hpp"

#include "runtime/hybrid_comm_formula.hpp"
#include "runtime/lightseq_schedule.hpp"
#include "runtime/tree_attention.hpp"
#include "runtime/ulysses_comm_formula.hpp"

namespace seqpar {
namespace {

int64_t kv_bytes(const AttentionProblem& p, int ranks) {
  return p.batch * (p.seq / ranks) * p.heads_kv * p.head_dim *
         static_cast<int64_t>(dtype_size(p.dtype));
}

// `hops` grouped exchanges of `bytes_each` bytes.
CommVolume exchanges(int64_t hops, int64_t bytes_each) {
  CommVolume v;
  v[CommOp::kExchange] = hops;
  v.bytes_sent = hops * bytes_each;
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
    case SchemeKind::kZigzag: {
      return exchanges(ranks - 1, 2 * kv_bytes(p, ranks));  // K, V to the next rank
    }
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
      return exchanges(2 * (int64_t{ranks} - 1), 2 * kv_bytes(p, ranks));
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
