// The ring-family test cases (see scheme_cases.hpp).
#include "scheme_cases.hpp"

#include <functional>

#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar::testing {

std::string SchemeCase::name() const {
  return str_cat(scheme_name(scheme), "_", mask_name(mask), "_h", heads_q, "kv", heads_kv, "_d",
                 head_dim, "_t", tokens_per_rank,
                 extra_tokens > 0 ? str_cat("x", extra_tokens) : "", "_b", batch, "_",
                 dtype_name(dtype));
}

std::vector<SchemeCase> scheme_cases() {
  std::vector<SchemeCase> cases;
  for (SchemeKind s : {SchemeKind::kRing, SchemeKind::kStriped, SchemeKind::kZigzag}) {
    const bool zigzag = s == SchemeKind::kZigzag;  // two chunks per rank: even token counts
    cases.push_back(
        {s, MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32});           // GQA 4, tiny odd chunks
    cases.push_back({s, MaskKind::kFull, 4, 4, 8, 14, 2, DType::kF32});  // MHA, batch 2
    cases.push_back(
        {s, MaskKind::kCausal, 8, 1, 32, 80, 1, DType::kF32});  // MQA, chunks cross tiles
    cases.push_back({s, MaskKind::kCausal, 4, 2, 64, 48, 1, DType::kBF16});
    cases.push_back({s, MaskKind::kCausal, 8, 8, 8, 6, 1, DType::kF16});
    if (!zigzag) {  // S % 2P != 0: layouts that need only S % P == 0
      cases.push_back({s, MaskKind::kCausal, 4, 2, 16, 7, 1, DType::kF32});
      cases.push_back({s, MaskKind::kFull, 2, 1, 8, 1, 1, DType::kF32});  // one token per rank
    }
    if (s == SchemeKind::kRing) {  // S % P != 0: contiguous shards differ by a token
      cases.push_back({s, MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32, 5});
      cases.push_back({s, MaskKind::kFull, 4, 4, 8, 14, 2, DType::kF32, 1});
      cases.push_back({s, MaskKind::kCausal, 4, 2, 64, 20, 1, DType::kBF16, 3});
    }
  }
  return cases;
}

StepConfig options_for(const SchemeCase& c, int ranks) {
  StepConfig o;
  o.plan.scheme = c.scheme;
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

std::vector<CommVolume> schedule_comm(SchemeKind scheme, const oracle::Shape& shape, Pass pass) {
  PlanConfig config;
  config.problem = shape.problem;
  config.scheme = scheme;
  config.ulysses_degree = scheme_descriptor(scheme).takes_ulysses_degree ? shape.ulysses : 0;
  config.ranks_per_node = shape.ranks_per_node;
  if (!validate_problem(config, shape.ranks).is_ok()) return {};
  const SchemeContext context{shape.problem, scheme, plan_layout(config, shape.ranks).value(),
                              nullptr,       Device::kHost, nullptr, shape.ranks_per_node, true};
  return scheme_comm(context, pass);
}

}  // namespace seqpar::testing
