// The ring-family test cases (see scheme_cases.hpp).
#include "scheme_cases.hpp"

namespace seqpar::testing {

std::string SchemeCase::name() const {
  return str_cat(scheme_name(scheme), "_", mask_name(mask), "_h", heads_q, "kv", heads_kv, "_d", head_dim,
                 "_chunk", chunk, "_b", batch, "_", dtype_name(dtype));
}

std::vector<SchemeCase> scheme_cases() {
  std::vector<SchemeCase> cases;
  for (SchemeKind s : {SchemeKind::kRing, SchemeKind::kStriped, SchemeKind::kZigzag}) {
    cases.push_back({s, MaskKind::kCausal, 8, 2, 16, 5, 1, DType::kF32});   // GQA 4, tiny odd chunks
    cases.push_back({s, MaskKind::kFull, 4, 4, 8, 7, 2, DType::kF32});      // MHA, batch 2
    cases.push_back({s, MaskKind::kCausal, 8, 1, 32, 40, 1, DType::kF32});  // MQA, chunks cross tiles
    cases.push_back({s, MaskKind::kCausal, 4, 2, 64, 24, 1, DType::kBF16});
    cases.push_back({s, MaskKind::kCausal, 8, 8, 8, 3, 1, DType::kF16});
  }
  return cases;
}

RunOptions options_for(const SchemeCase& c, int ranks, uint64_t seed) {
  RunOptions o;
  o.ranks = ranks;
  o.plan.scheme = c.scheme;
  o.plan.problem = AttentionProblem{c.batch, 2 * ranks * c.chunk, c.heads_q, c.heads_kv, c.head_dim,
                                    c.mask, c.dtype, 0.0f};
  o.backward = true;
  o.check = true;
  o.iters = 1;
  o.warmup = 0;
  o.seed = seed;
  return o;
}

}  // namespace seqpar::testing
