// lightseq on the threads backend, P in {1, 2, 3, 4, 6, 8}: forward and backward against the fp64
// reference with asserted tolerances, every rank's communication against its own formula, and
// the full mask refused with the rule named on every rank.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>

#include "checked_step.hpp"
#include "comm/threads_communicator.hpp"
#include "lightseq_cases.hpp"
#include "runtime/plan.hpp"

namespace seqpar {
namespace {

using testing::SchemeCase;

class LightSeqThreads : public ::testing::TestWithParam<std::tuple<SchemeCase, int>> {};

TEST_P(LightSeqThreads, MatchReferenceAndCommFormula) {
  const auto& [c, ranks] = GetParam();
  testing::expect_checked_step_on_threads(testing::options_for(c, ranks), ranks);
}

INSTANTIATE_TEST_SUITE_P(
    AllRanks, LightSeqThreads,
    ::testing::Combine(::testing::ValuesIn(testing::lightseq_cases()),
                       ::testing::Values(1, 2, 3, 4, 6, 8)),
    [](const ::testing::TestParamInfo<std::tuple<SchemeCase, int>>& param_info) {
      return str_cat(std::get<0>(param_info.param).name(), "_P", std::get<1>(param_info.param));
    });

TEST(LightSeqRejects, FullMaskOnEveryRank) {
  constexpr int kRanks = 3;
  std::vector<Status> statuses(kRanks);
  std::mutex mutex;
  (void)run_threads(kRanks, [&](Communicator& comm) -> Status {
    comm.set_timeout(std::chrono::seconds(20));
    PlanConfig config;
    config.scheme = SchemeKind::kLightSeq;
    config.problem = AttentionProblem{1, 48, 4, 2, 16, MaskKind::kFull, DType::kF32, 0.0f};
    Status s = Plan::create(config, comm).status();
    std::lock_guard<std::mutex> lock(mutex);
    statuses[static_cast<size_t>(comm.rank())] = s;
    return Status::ok();
  });
  for (int r = 0; r < kRanks; ++r) {
    const Status& s = statuses[static_cast<size_t>(r)];
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "rank " << r << ": " << s.to_string();
    EXPECT_NE(s.message().find("lightseq needs the causal mask"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace seqpar
