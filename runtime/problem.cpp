// FLOP count of an attention problem.
#include "runtime/problem.hpp"

namespace seqpar {

double attention_forward_flops(const AttentionProblem& p) {
  const double full = 4.0 * static_cast<double>(p.batch) * static_cast<double>(p.heads_q) *
                      static_cast<double>(p.seq) * static_cast<double>(p.seq) *
                      static_cast<double>(p.head_dim);
  return p.mask == MaskKind::kCausal ? full / 2.0 : full;
}

}  // namespace seqpar
