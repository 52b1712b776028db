// The Ulysses test cases (see ulysses_cases.hpp).
#include "ulysses_cases.hpp"

namespace seqpar::testing {

std::vector<SchemeCase> ulysses_cases(int ranks) {
  constexpr SchemeKind u = SchemeKind::kUlysses;
  const SchemeCase all[] = {
      {u, MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32},  // GQA 4; uneven on P = 3, 6
      {u, MaskKind::kFull, 4, 4, 8, 14, 2, DType::kF32},     // MHA, batch 2
      {u, MaskKind::kCausal, 8, 1, 32, 24, 1, DType::kF32},  // MQA (GQA 8): one kv head shared
      {u, MaskKind::kFull, 16, 8, 8, 8, 1, DType::kF32},     // GQA 2
      {u, MaskKind::kCausal, 6, 2, 16, 9, 1, DType::kF32},   // the uneven split on P = 4
      {u, MaskKind::kFull, 5, 5, 8, 7, 1, DType::kF32},      // odd heads, whole kv heads 3 + 2
      {u, MaskKind::kCausal, 12, 3, 8, 6, 2, DType::kBF16},  // uneven sharing on P = 6, 8
      {u, MaskKind::kCausal, 4, 2, 64, 20, 1, DType::kBF16},
      {u, MaskKind::kCausal, 3, 1, 8, 5, 1, DType::kF16},  // odd MQA group split 2 + 1
      // S % P != 0: shards differ by a token, so the all-to-all counts differ by source too.
      {u, MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32, 5},
      {u, MaskKind::kFull, 6, 2, 16, 9, 2, DType::kF32, 1},  // and uneven heads on P = 4
      {u, MaskKind::kCausal, 4, 2, 64, 20, 1, DType::kBF16, 3},
  };
  std::vector<SchemeCase> cases;
  for (const SchemeCase& c : all) {
    if (c.heads_q >= ranks) cases.push_back(c);
  }
  return cases;
}

}  // namespace seqpar::testing
