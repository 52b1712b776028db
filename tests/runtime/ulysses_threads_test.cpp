// Ulysses on the threads backend, P in {1, 2, 3, 4, 6, 8}: forward and backward against the
// fp64 reference with asserted tolerances, every rank's communication against its own formula
// (uneven head splits make ranks send different amounts), the formula by hand, and Hq < P
// refused on every rank; K and V passed as one buffer.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "harness/test_data.hpp"
#include "runtime/plan.hpp"
#include "ulysses_cases.hpp"

namespace seqpar {
namespace {

using testing::SchemeCase;

class UlyssesThreads : public ::testing::TestWithParam<int> {};

TEST_P(UlyssesThreads, MatchReferenceAndCommFormula) {
  const int ranks = GetParam();
  for (const SchemeCase& c : testing::ulysses_cases(ranks)) {
    SCOPED_TRACE(c.name());
    std::vector<StepReport> reports;
    ASSERT_NO_FATAL_FAILURE(
        testing::expect_checked_step_on_threads(testing::options_for(c, ranks), ranks, &reports));
    for (int r = 0; r < ranks; ++r) {
      const StepReport& rep = reports[static_cast<size_t>(r)];
      EXPECT_EQ(rep.measured_comm[CommOp::kAllToAll], 4);  // two each way
      EXPECT_EQ(rep.measured_comm[CommOp::kExchange], 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, UlyssesThreads, ::testing::Values(1, 2, 3, 4, 6, 8),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return str_cat("P", param_info.param);
                         });

// The uneven case by hand: B = 1, S = 16 on P = 4 (4 tokens each), Hq = 6, Hkv = 2,
// D = 8, fp32. Slices (q, kv): (2, 1), (1, 1), (2, 1), (1, 1); every rank holds one kv head, so
// the kv heads of all slices count 4. One head of 4 tokens is 4 * 8 * 4 = 128 bytes.
TEST(UlyssesCommFormula, MatchesHandCountForUnevenSplit) {
  const AttentionProblem p{1, 16, 6, 2, 8, MaskKind::kCausal, DType::kF32, 0.0f};
  const int64_t head = 128;    // (4 tokens, 1 head, D = 8) fp32
  const int64_t stat = 4 * 4;  // (1 head, 4 tokens) fp32 LSE or delta
  const oracle::Shape four{p, 4}, one{p, 1};
  testing::for_schedule_and_oracle(SchemeKind::kUlysses, four, [&](const auto& f, const auto& b) {
    // Rank 0 (2 q heads): sends the other 4 q heads and the other ranks' 3 kv slices, K and V;
    // returns O + LSE of its 2 heads to 3 ranks.
    EXPECT_EQ(f(0)[CommOp::kAllToAll], 2);
    EXPECT_EQ(f(0).bytes_sent, 4 * head + 2 * 3 * head + 3 * 2 * (head + stat));
    EXPECT_EQ(f(1).bytes_sent, 5 * head + 2 * 3 * head + 3 * (head + stat));  // 1 q head
    // Backward, rank 0: Q and dO of 4 heads, K and V of 3 slices, LSE and delta of 4 heads; then
    // dQ (2 heads), dK and dV (1 head each) to 3 ranks.
    EXPECT_EQ(b(0)[CommOp::kAllToAll], 2);
    EXPECT_EQ(b(0).bytes_sent, 2 * 4 * head + 2 * 3 * head + 2 * 4 * stat + 3 * (2 + 2) * head);
    EXPECT_EQ(b(1).bytes_sent, 2 * 5 * head + 2 * 3 * head + 2 * 5 * stat + 3 * (1 + 2) * head);
  });
  // One rank sends nothing.
  EXPECT_EQ(testing::schedule_comm(SchemeKind::kUlysses, one, Pass::kForward)[0].bytes_sent, 0);
  EXPECT_EQ(oracle::forward(SchemeKind::kUlysses, one, 0).bytes_sent, 0);
}

TEST(UlyssesRejects, FewerQueryHeadsThanRanksOnEveryRank) {
  constexpr int kRanks = 4;
  std::vector<Status> statuses(kRanks);
  std::mutex mutex;
  (void)run_threads(kRanks, [&](Communicator& comm) -> Status {
    PlanConfig config;
    config.scheme = SchemeKind::kUlysses;
    config.problem = AttentionProblem{1, 64, 2, 1, 16, MaskKind::kCausal, DType::kF32, 0.0f};
    Status s = Plan::create(config, comm).status();
    std::lock_guard<std::mutex> lock(mutex);
    statuses[static_cast<size_t>(comm.rank())] = s;
    return Status::ok();  // every rank reports; none aborts the others
  });
  for (int r = 0; r < kRanks; ++r) {
    const Status& s = statuses[static_cast<size_t>(r)];
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "rank " << r << ": " << s.to_string();
    EXPECT_NE(s.message().find("ulysses needs at least as many query heads (H) as ranks (P)"),
              std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("rank " + std::to_string(r)), std::string::npos) << s.message();
  }
}

// K and V may be the same buffer (equal keys and values): forward packs V by its position in the
// piece, not by comparing pointers, so the result equals that of two equal buffers (GQA, where
// a q part and a kv part differ in size).
TEST(UlyssesThreads, KeysAndValuesInOneBuffer) {
  constexpr int kRanks = 3;
  const Status status = run_threads(kRanks, [](Communicator& comm) -> Status {
    PlanConfig config;
    config.scheme = SchemeKind::kUlysses;
    config.problem =
        AttentionProblem{1, 12 * kRanks, 8, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
    RankTensors two, one;
    SEQPAR_RETURN_IF_ERROR(two.allocate(plan->problem(), plan->local_seq()));
    SEQPAR_RETURN_IF_ERROR(one.allocate(plan->problem(), plan->local_seq()));
    fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 5, InputTensor::kQ,
                     two.q.data());
    fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 5, InputTensor::kK,
                     two.k.data());
    std::memcpy(two.v.data(), two.k.data(), two.k.bytes());
    SEQPAR_RETURN_IF_ERROR(plan->forward(
        {two.q.data(), two.k.data(), two.v.data(), two.out.data(), two.lse.as<float>()}));
    SEQPAR_RETURN_IF_ERROR(plan->forward(
        {two.q.data(), two.k.data(), two.k.data(), one.out.data(), one.lse.as<float>()}));
    EXPECT_EQ(std::memcmp(two.out.data(), one.out.data(), two.out.bytes()), 0)
        << "rank " << comm.rank();
    EXPECT_EQ(std::memcmp(two.lse.data(), one.lse.data(), two.lse.bytes()), 0)
        << "rank " << comm.rank();
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
}

}  // namespace
}  // namespace seqpar
