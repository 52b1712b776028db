// lightseq on the threads backend, P in {1, 2, 3, 4, 6, 8}: forward and backward against the fp64
// reference with asserted tolerances, every rank's communication against its own formula, and
// the block pairs each rank's thread actually computes (balanced, as the schedule says), and the
// full mask refused with the rule named on every rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "attention/dispatch.hpp"
#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "harness/test_data.hpp"
#include "lightseq_cases.hpp"
#include "runtime/lightseq_pairing.hpp"
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

// The balance rule, on what runs: each rank's thread counts its block-kernel calls in a
// forward and a backward step. Every rank computes exactly the pairs its schedule gives it (one
// kernel call per pair, forward and backward), and the busiest rank has at most one pair more
// than the least busy.
TEST(LightSeqBalance, BlockPairsEachRankComputesAreWithinOne) {
  for (int ranks = 2; ranks <= 8; ++ranks) {
    SCOPED_TRACE(str_cat("P = ", ranks));
    std::vector<BlockKernelCalls> calls(static_cast<size_t>(ranks));
    const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
      comm.set_timeout(std::chrono::seconds(60));
      PlanConfig config;
      config.scheme = SchemeKind::kLightSeq;
      config.problem =
          AttentionProblem{1, 16 * ranks, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
      SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
      RankTensors t;
      SEQPAR_RETURN_IF_ERROR(t.allocate(plan->problem(), plan->local_seq()));
      for (auto [input, buffer] :
           {std::pair{InputTensor::kQ, &t.q}, std::pair{InputTensor::kK, &t.k},
            std::pair{InputTensor::kV, &t.v}, std::pair{InputTensor::kDout, &t.dout}}) {
        fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 11, input, buffer->data());
      }
      const BlockKernelCalls before = block_kernel_calls_on_this_thread();
      SEQPAR_RETURN_IF_ERROR(
          plan->forward({t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()}));
      SEQPAR_RETURN_IF_ERROR(
          plan->backward({t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>(),
                          t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data()}));
      const BlockKernelCalls after = block_kernel_calls_on_this_thread();
      calls[static_cast<size_t>(comm.rank())] = {after.forward - before.forward,
                                                 after.backward - before.backward};
      return Status::ok();
    });
    ASSERT_TRUE(status.is_ok()) << status.to_string();
    const LightSeqPairing schedule = lightseq_pairing(ranks);
    int64_t least = INT64_MAX, most = 0;
    for (int r = 0; r < ranks; ++r) {
      int64_t scheduled = 0;
      for (size_t step = 0; step < schedule.steps.size(); ++step) {
        scheduled += schedule.at(static_cast<int>(step), r).computes() ? 1 : 0;
      }
      const BlockKernelCalls& c = calls[static_cast<size_t>(r)];
      EXPECT_EQ(c.forward, scheduled) << "rank " << r;
      EXPECT_EQ(c.backward, scheduled) << "rank " << r;
      least = std::min(least, c.forward);
      most = std::max(most, c.forward);
    }
    EXPECT_LE(most - least, 1) << "block pairs per rank from " << least << " to " << most;
  }
}

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
