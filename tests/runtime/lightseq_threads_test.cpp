// lightseq on the threads backend, P in {1, 2, 3, 4, 6, 8}: forward and backward against the fp64
// reference with asserted tolerances, every rank's communication against its own formula, and
// the full mask refused with the rule named on every rank.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>

#include "comm/threads_communicator.hpp"
#include "launch/training_step.hpp"
#include "lightseq_cases.hpp"
#include "runtime/plan.hpp"

namespace seqpar {
namespace {

using testing::SchemeCase;

class LightSeqThreads : public ::testing::TestWithParam<std::tuple<SchemeCase, int>> {};

TEST_P(LightSeqThreads, MatchReferenceAndCommFormula) {
  const auto& [c, ranks] = GetParam();
  const RunOptions options = testing::options_for(c, ranks);
  std::vector<StepReport> reports(static_cast<size_t>(ranks));
  const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(reports[static_cast<size_t>(comm.rank())],
                            run_training_step(options, comm));
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < ranks; ++r) {
    const StepReport& rep = reports[static_cast<size_t>(r)];
    ASSERT_TRUE(rep.errors.has_value());
    const CheckErrors& e = *rep.errors;
    EXPECT_LE(e.out, e.tolerance) << "rank " << r;
    EXPECT_LE(e.lse, e.tolerance) << "rank " << r;
    EXPECT_LE(e.dq, e.tolerance) << "rank " << r;
    EXPECT_LE(e.dk, e.tolerance) << "rank " << r;
    EXPECT_LE(e.dv, e.tolerance) << "rank " << r;
    EXPECT_TRUE(rep.comm_matches_formula)
        << "rank " << r << ": largest " << rep.measured_comm.bytes_sent << " bytes sent; formula "
        << rep.expected_comm.bytes_sent;
  }
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
