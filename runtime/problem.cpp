// FLOP count of an attention problem; phase names.
#include "runtime/problem.hpp"

#include "core/enum_names.hpp"

namespace seqpar {

double attention_forward_flops(const AttentionProblem& p) {
  const double full = 4.0 * static_cast<double>(p.batch) * static_cast<double>(p.heads_q) *
                      static_cast<double>(p.seq) * static_cast<double>(p.seq) *
                      static_cast<double>(p.head_dim);
  return p.mask == MaskKind::kCausal ? full / 2.0 : full;
}

constexpr auto kPhaseNames = enum_names<Phase>("train", "prefill", "decode");

const char* phase_name(Phase phase) { return kPhaseNames.name(phase); }

StatusOr<Phase> parse_phase(std::string_view name) { return kPhaseNames.parse(name, "phase"); }

}  // namespace seqpar
