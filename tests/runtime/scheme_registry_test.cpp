// The registry (runtime/schemes.def): every registered scheme and decoder has a complete
// descriptor, a name that parses back, and a closed-form oracle, and runs a checked step on the
// threads backend (forward and backward against the fp64 reference, every rank's traffic equal to
// its schedule) at P = 1..4. A scheme added without its oracle, or with a broken descriptor,
// fails here (docs/architecture.md, "Adding a scheme").
#include "runtime/scheme_registry.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "checked_step.hpp"
#include "comm_oracles.hpp"
#include "runtime/plan.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

TEST(SchemeRegistry, EverySchemeIsComplete) {
  std::set<std::string> names;
  for (const SchemeKind scheme : all_schemes()) {
    const SchemeDescriptor& d = scheme_descriptor(scheme);
    SCOPED_TRACE(d.name);
    EXPECT_TRUE(names.insert(d.name).second) << "two schemes named " << d.name;
    EXPECT_NE(std::string(d.summary), "");
    EXPECT_TRUE(d.layout && d.candidate_degrees && d.create && d.workspace_bytes && d.schedule);
    const StatusOr<SchemeKind> parsed = parse_scheme(d.name);
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    EXPECT_EQ(parsed.value(), scheme);
    EXPECT_TRUE(oracle::has_oracle(scheme)) << "no closed-form oracle in tests/support";
    for (const int ranks : {1, 4, 12}) {
      for (const int u : d.candidate_degrees(ranks)) {
        EXPECT_TRUE(u >= 1 && ranks % u == 0) << "U = " << u << " on " << ranks << " ranks";
      }
    }
  }
  EXPECT_EQ(names.size(), all_schemes().size());
  EXPECT_NE(scheme_names_text().find("zigzag"), std::string::npos);
  EXPECT_FALSE(parse_scheme("zigzags").is_ok());
}

TEST(SchemeRegistry, EveryDecoderIsComplete) {
  std::set<std::string> names;
  for (const DecoderKind decoder : all_decoders()) {
    const DecoderDescriptor& d = decoder_descriptor(decoder);
    SCOPED_TRACE(d.name);
    EXPECT_TRUE(names.insert(d.name).second);
    EXPECT_TRUE(d.create && d.workspace_bytes && d.schedule);
    ASSERT_TRUE(parse_decoder(d.name).is_ok());
    EXPECT_EQ(parse_decoder(d.name).value(), decoder);
  }
  EXPECT_FALSE(parse_decoder("zigzag").is_ok());
}

class EveryRegisteredScheme : public ::testing::TestWithParam<std::tuple<SchemeKind, int>> {};

// A problem every scheme accepts on P ranks: causal (LightSeq), S divisible by 2P (zigzag, the
// hybrid's ring), Hq >= P (Ulysses), GQA 2.
TEST_P(EveryRegisteredScheme, RunsACheckedStepOnThreads) {
  const auto [scheme, ranks] = GetParam();
  StepConfig step;
  step.plan.scheme = scheme;
  step.plan.problem =
      AttentionProblem{1, 2 * ranks * 12, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  step.backward = true;
  step.check = true;
  step.iters = 1;
  step.warmup = 0;
  step.seed = 17 + static_cast<uint64_t>(scheme) * 31 + static_cast<uint64_t>(ranks);
  testing::expect_checked_step_on_threads(step, ranks);
}

INSTANTIATE_TEST_SUITE_P(
    Registry, EveryRegisteredScheme,
    ::testing::Combine(::testing::ValuesIn(all_schemes()), ::testing::Values(1, 2, 3, 4)),
    [](const ::testing::TestParamInfo<std::tuple<SchemeKind, int>>& param_info) {
      return str_cat(scheme_name(std::get<0>(param_info.param)), "_P",
                     std::get<1>(param_info.param));
    });

}  // namespace
}  // namespace seqpar
