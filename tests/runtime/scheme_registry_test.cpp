// The registry (runtime/schemes.def): every registered scheme and decoder has a complete
// descriptor, a name that parses back, a closed-form oracle and a workspace query equal to each
// rank's allocation, and every scheme runs a checked step on the
// threads backend (forward and backward against the fp64 reference, every rank's traffic equal to
// its schedule) at P = 1..4. A scheme added without its oracle, or with a broken descriptor,
// fails here (docs/architecture.md, "Adding a scheme").
#include "runtime/scheme_registry.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "checked_step.hpp"
#include "comm_oracles.hpp"
#include "runtime/decode_plan.hpp"
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

// PlanConfig::scheme and DecodeConfig::decoder are public fields, so an embedder may cast any int
// to them: validation refuses such a value, naming it, and nothing reads past the tables.
TEST(SchemeRegistry, UnregisteredValuesAreRefused) {
  const auto scheme = static_cast<SchemeKind>(all_schemes().size());
  const auto decoder = static_cast<DecoderKind>(all_decoders().size());
  EXPECT_FALSE(is_registered(scheme));
  EXPECT_FALSE(is_registered(static_cast<SchemeKind>(-1)));
  EXPECT_FALSE(is_registered(decoder));
  EXPECT_STREQ(scheme_name(scheme), "?");
  EXPECT_STREQ(decoder_name(decoder), "?");

  PlanConfig config;
  config.scheme = scheme;
  config.problem = AttentionProblem{1, 64, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  const Status refused = validate_problem(config, 4);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find(str_cat("unknown scheme ", all_schemes().size())),
            std::string::npos)
      << refused.to_string();
  EXPECT_FALSE(plan_layout(config, 4).is_ok());

  DecodeConfig decode;
  decode.decoder = decoder;
  decode.problem = config.problem;
  const Status decoder_refused = DecodePlan::validate(decode, 4);
  EXPECT_EQ(decoder_refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(decoder_refused.message().find("unknown decoder"), std::string::npos)
      << decoder_refused.to_string();
}

// The ranks and ranks per node the workspace tests place plans on: flat, and two or three nodes
// (the tree's combine and decoder split per node; the others ignore the placement).
constexpr std::pair<int, int> kPlacements[] = {{1, 0}, {4, 0}, {4, 2}, {6, 3}, {6, 2}};

// A descriptor's workspace query is what each rank's plan allocates: every scheme, rank by rank,
// flat and per node, training and forward-only plans, contiguous shards uneven (S % P != 0).
TEST(SchemeRegistry, WorkspaceQueryIsWhatEachRankAllocates) {
  for (const SchemeKind scheme : all_schemes()) {
    for (const auto& [ranks, per_node] : kPlacements) {
      for (const bool backward : {true, false}) {
        SCOPED_TRACE(str_cat(scheme_name(scheme), " P=", ranks, " R/node=", per_node,
                             backward ? " training" : " forward-only"));
        PlanConfig config;
        config.scheme = scheme;
        config.problem =
            AttentionProblem{1, 2 * ranks * 12, 6, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
        config.ulysses_degree = testing::grid_ulysses_degree(scheme, ranks);
        config.ranks_per_node = per_node;
        config.backward = backward;
        const StatusOr<Layout> layout = plan_layout(config, ranks);
        ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
        if (layout.value().kind() == LayoutKind::kContiguous) config.problem.seq += 1;
        if (!validate_problem(config, ranks).is_ok()) continue;  // e.g. Ulysses with Hq < P

        std::vector<size_t> allocated(static_cast<size_t>(ranks));
        const std::vector<Status> statuses =
            testing::statuses_on_threads(ranks, [&](Communicator& comm) -> Status {
              SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
              allocated[static_cast<size_t>(comm.rank())] = plan->workspace_bytes();
              return Status::ok();
            });
        const SchemeContext context{
            config.problem, scheme,        plan_layout(config, ranks).value(),
            nullptr,        Device::kHost, nullptr,
            per_node,       backward};
        for (int r = 0; r < ranks; ++r) {
          ASSERT_TRUE(statuses[static_cast<size_t>(r)].is_ok())
              << statuses[static_cast<size_t>(r)].to_string();
          const StatusOr<size_t> queried = scheme_descriptor(scheme).workspace_bytes(context, r);
          ASSERT_TRUE(queried.is_ok()) << queried.status().to_string();
          EXPECT_EQ(queried.value(), allocated[static_cast<size_t>(r)]) << "rank " << r;
        }
      }
    }
  }
}

// The same for every decoder: the query against each rank's DecodePlan (besides its cache).
TEST(SchemeRegistry, DecoderWorkspaceQueryIsWhatEachRankAllocates) {
  for (const DecoderKind decoder : all_decoders()) {
    for (const auto& [ranks, per_node] : kPlacements) {
      SCOPED_TRACE(str_cat(decoder_name(decoder), " P=", ranks, " R/node=", per_node));
      DecodeConfig config;
      config.decoder = decoder;
      config.problem =
          AttentionProblem{2, 5 * ranks + 2, 8, 2, 16, MaskKind::kCausal, DType::kBF16, 0.0f};
      config.q_len = 3;
      config.ranks_per_node = per_node;
      std::vector<size_t> allocated(static_cast<size_t>(ranks));
      const std::vector<Status> statuses =
          testing::statuses_on_threads(ranks, [&](Communicator& comm) -> Status {
            SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan,
                                    DecodePlan::create(config, comm));
            allocated[static_cast<size_t>(comm.rank())] = plan->workspace_bytes();
            return Status::ok();
          });
      const DecodeContext context = DecodeContext::of(DecodePlan::resolved(config), ranks, nullptr);
      for (int r = 0; r < ranks; ++r) {
        ASSERT_TRUE(statuses[static_cast<size_t>(r)].is_ok())
            << statuses[static_cast<size_t>(r)].to_string();
        const StatusOr<size_t> queried = decoder_descriptor(decoder).workspace_bytes(context, r);
        ASSERT_TRUE(queried.is_ok()) << queried.status().to_string();
        EXPECT_EQ(queried.value(), allocated[static_cast<size_t>(r)]) << "rank " << r;
      }
    }
  }
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
