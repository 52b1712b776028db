#pragma once
// Problem cases shared by the threads and mpirun tests of lightseq: causal only, GQA 1/2/4 and
// MQA, odd token counts per rank, blocks that cross kernel tiles, fp32 and bf16.
#include <vector>

#include "scheme_cases.hpp"

namespace seqpar::testing {

inline std::vector<SchemeCase> lightseq_cases() {
  const SchemeKind s = SchemeKind::kLightSeq;
  const MaskKind causal = MaskKind::kCausal;
  return {
      {s, causal, 8, 2, 16, 10, 1, DType::kF32},  // GQA 4
      {s, causal, 4, 2, 16, 7, 1, DType::kF32},   // GQA 2, odd tokens per rank
      {s, causal, 4, 4, 8, 13, 2, DType::kF32},   // MHA, batch 2, odd tokens per rank
      {s, causal, 8, 1, 32, 80, 1, DType::kF32},  // MQA, blocks cross 64-token tiles
      {s, causal, 4, 2, 64, 33, 1, DType::kBF16},
      // S % P != 0: blocks differ by a token, and so do the transfers of each pair
      {s, causal, 8, 2, 16, 10, 1, DType::kF32, 5},
      {s, causal, 4, 4, 8, 13, 2, DType::kF32, 1},
      {s, causal, 4, 2, 64, 20, 1, DType::kBF16, 3},
  };
}

}  // namespace seqpar::testing
