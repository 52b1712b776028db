// Communication formulas of the ring family (see comm_formula.hpp).
#include "runtime/comm_formula.hpp"

namespace seqpar {
namespace {

int64_t kv_bytes(const AttentionProblem& p, int ranks) {
  return p.batch * (p.seq / ranks) * p.heads_kv * p.head_dim *
         static_cast<int64_t>(dtype_size(p.dtype));
}

}  // namespace

CommVolume expected_forward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks) {
  switch (scheme) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag: {
      const int64_t hops = ranks - 1;  // K, V to the next rank
      return {hops, hops * 2 * kv_bytes(p, ranks)};
    }
  }
  return {};
}

CommVolume expected_backward_comm(SchemeKind scheme, const AttentionProblem& p, int ranks) {
  switch (scheme) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag: {
      const int64_t hops = 2 * (int64_t{ranks} - 1);  // P-1 of K, V plus P-1 of dK, dV shares
      return {hops, hops * 2 * kv_bytes(p, ranks)};
    }
  }
  return {};
}

}  // namespace seqpar
