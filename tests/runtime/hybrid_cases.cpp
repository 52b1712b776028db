// The hybrid test cases and grids (see hybrid_cases.hpp).
#include "hybrid_cases.hpp"

namespace seqpar::testing {

std::vector<HybridGridCase> hybrid_grids() {
  return {{1, 1}, {1, 2}, {2, 1}, {3, 1}, {1, 3}, {2, 2}, {2, 3}, {3, 2}, {4, 2}, {2, 4}};
}

std::vector<SchemeCase> hybrid_cases(int ulysses) {
  constexpr SchemeKind h = SchemeKind::kHybrid;
  const SchemeCase all[] = {
      {h, MaskKind::kCausal, 8, 2, 16, 6, 1, DType::kF32},     // GQA 4; kv heads shared for U = 4
      {h, MaskKind::kFull, 4, 4, 8, 10, 2, DType::kF32},       // MHA, batch 2
      {h, MaskKind::kCausal, 4, 2, 16, 6, 1, DType::kF32},     // GQA 2; shared for U >= 3
      {h, MaskKind::kCausal, 8, 1, 16, 8, 1, DType::kF32},     // MQA: one kv head for the group
      {h, MaskKind::kCausal, 6, 2, 16, 4, 1, DType::kF32},     // uneven: 2+1 | 2+1 on U = 4
      {h, MaskKind::kFull, 6, 2, 8, 6, 1, DType::kF32},        // uneven, full mask
      {h, MaskKind::kCausal, 8, 2, 32, 12, 1, DType::kBF16},   // GQA 4, chunks cross tiles
      {h, MaskKind::kFull, 4, 1, 16, 6, 1, DType::kBF16},      // MQA, full mask
      {h, MaskKind::kCausal, 8, 2, 16, 6, 1, DType::kF32, 1},  // S/R = U*6 + 2: uneven in U
      {h, MaskKind::kFull, 6, 2, 8, 4, 2, DType::kF32, 1},     // and uneven heads, batch 2
  };
  std::vector<SchemeCase> cases;
  for (const SchemeCase& c : all) {
    if (c.heads_q >= ulysses) cases.push_back(c);
  }
  return cases;
}

StepConfig hybrid_options_for(const SchemeCase& c, const HybridGridCase& grid) {
  StepConfig o = options_for(c, grid.ranks());
  o.plan.ulysses_degree = grid.ulysses;
  // Keep S % 2R == 0: the extra tokens come in whole pairs of zigzag chunks.
  o.plan.problem.seq = grid.ranks() * c.tokens_per_rank + 2 * grid.rings * c.extra_tokens;
  return o;
}

}  // namespace seqpar::testing
