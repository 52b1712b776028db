// FLOP count of an attention problem; phase names.
#include "runtime/problem.hpp"

namespace seqpar {

double attention_forward_flops(const AttentionProblem& p) {
  const double full = 4.0 * static_cast<double>(p.batch) * static_cast<double>(p.heads_q) *
                      static_cast<double>(p.seq) * static_cast<double>(p.seq) *
                      static_cast<double>(p.head_dim);
  return p.mask == MaskKind::kCausal ? full / 2.0 : full;
}

const char* phase_name(Phase phase) {
  constexpr const char* kNames[] = {"train", "prefill", "decode"};
  return kNames[static_cast<int>(phase)];
}

StatusOr<Phase> parse_phase(std::string_view name) {
  for (Phase phase : {Phase::kTrain, Phase::kPrefill, Phase::kDecode}) {
    if (name == phase_name(phase)) return phase;
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown phase '", std::string(name),
                     "' (expected train, prefill or decode)");
}

}  // namespace seqpar
