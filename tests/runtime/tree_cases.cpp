// The tree attention test cases (see tree_cases.hpp).
#include "tree_cases.hpp"

#include <functional>

namespace seqpar::testing {

std::string TreeCase::name() const {
  return str_cat("tree_", mask_name(mask), "_h", heads_q, "kv", heads_kv, "_d", head_dim, "_t",
                 tokens_per_rank, extra_tokens > 0 ? str_cat("x", extra_tokens) : "", "_b", batch,
                 "_", dtype_name(dtype));
}

std::vector<TreeCase> tree_cases() {
  return {
      {MaskKind::kCausal, 8, 8, 16, 10, 1, DType::kF32},     // GQA 1 (MHA)
      {MaskKind::kFull, 8, 4, 8, 14, 2, DType::kF32},        // GQA 2, batch 2
      {MaskKind::kCausal, 8, 2, 32, 80, 1, DType::kF32},     // GQA 4, shards cross 64-row tiles
      {MaskKind::kCausal, 16, 2, 16, 7, 2, DType::kF32},     // GQA 8, batch 2
      {MaskKind::kFull, 8, 1, 16, 9, 1, DType::kF32},        // MQA
      {MaskKind::kCausal, 4, 2, 64, 48, 1, DType::kBF16},    // bf16
      {MaskKind::kFull, 8, 1, 8, 5, 2, DType::kBF16},        // MQA, bf16, batch 2
      {MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32, 5},  // S % P != 0
      {MaskKind::kFull, 8, 4, 8, 14, 2, DType::kF32, 1},     // S % P != 0, batch 2
  };
}

StepConfig tree_options_for(const TreeCase& c, int ranks) {
  StepConfig o;
  o.plan.scheme = SchemeKind::kTree;
  o.plan.problem = AttentionProblem{c.batch,    ranks * c.tokens_per_rank + c.extra_tokens,
                                    c.heads_q,  c.heads_kv,
                                    c.head_dim, c.mask,
                                    c.dtype,    0.0f};
  o.backward = true;
  o.check = true;
  o.iters = 1;
  o.warmup = 0;
  o.seed = std::hash<std::string>{}(c.name()) ^ static_cast<uint64_t>(ranks);
  return o;
}

}  // namespace seqpar::testing
