// Communication formulas of the ring family (see comm_formula.hpp).
#include "runtime/comm_formula.hpp"

namespace seqpar {
namespace {

int64_t kv_bytes(const AttentionProblem& p, int ranks) {
  return p.batch * (p.seq / ranks) * p.heads_kv * p.head_dim * static_cast<int64_t>(dtype_size(p.dtype));
}

}  // namespace

CommVolume expected_forward_comm(SchemeKind /*ring family*/, const AttentionProblem& p, int ranks) {
  if (ranks == 1) return {};
  return {ranks - 1, (ranks - 1) * 2 * kv_bytes(p, ranks)};
}

CommVolume expected_backward_comm(SchemeKind /*ring family*/, const AttentionProblem& p, int ranks) {
  if (ranks == 1) return {};
  const int64_t hops = 2 * (int64_t{ranks} - 1);  // P-1 of K,V plus P-1 of dK,dV shares
  return {hops, hops * 2 * kv_bytes(p, ranks)};
}

}  // namespace seqpar
