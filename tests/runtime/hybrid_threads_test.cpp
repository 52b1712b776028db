// Hybrid (Ulysses inside groups of U, zigzag ring across R groups) on the threads backend, for
// the U x R grids of hybrid_cases.hpp: forward and backward against the fp64 reference with
// asserted tolerances, every rank's communication (the plan's communicator and the group and
// ring subgroups together) against its own formula, the formula by hand, rank placement (which
// global ranks form each group and each ring), the choice of U, and bad grids refused on every
// rank.
#include <gtest/gtest.h>

#include <mutex>
#include <numeric>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "hybrid_cases.hpp"
#include "runtime/hybrid_grid.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

using testing::HybridGridCase;
using testing::SchemeCase;

class HybridThreads : public ::testing::TestWithParam<HybridGridCase> {};

TEST_P(HybridThreads, MatchReferenceAndCommFormula) {
  const HybridGridCase grid = GetParam();
  for (const SchemeCase& c : testing::hybrid_cases(grid.ulysses)) {
    SCOPED_TRACE(c.name());
    std::vector<StepReport> reports;
    ASSERT_NO_FATAL_FAILURE(testing::expect_checked_step_on_threads(
        testing::hybrid_options_for(c, grid), grid.ranks(), &reports));
    for (int r = 0; r < grid.ranks(); ++r) {
      const StepReport& rep = reports[static_cast<size_t>(r)];
      EXPECT_EQ(rep.measured_comm[CommOp::kAllToAll], 4) << "rank " << r;  // two each way
      // Ring: R-1 K,V shifts forward; R-1 shifts and R-1 dK,dV shares backward.
      EXPECT_EQ(rep.measured_comm[CommOp::kExchange], 3 * (grid.rings - 1)) << "rank " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Grids, HybridThreads, ::testing::ValuesIn(testing::hybrid_grids()),
                         [](const ::testing::TestParamInfo<HybridGridCase>& param_info) {
                           return str_cat("U", param_info.param.ulysses, "xR",
                                          param_info.param.rings);
                         });

// Every rank's subgroups: the group is ranks [g*U, (g+1)*U) in place order, the ring is the
// ranks with the same place u, in group order.
TEST(HybridPlacement, GroupsAreConsecutiveRanksAndRingsJoinEqualPlaces) {
  for (const HybridGridCase grid :
       {HybridGridCase{2, 3}, HybridGridCase{3, 2}, HybridGridCase{4, 2}, HybridGridCase{2, 4}}) {
    SCOPED_TRACE(str_cat("U=", grid.ulysses, " R=", grid.rings));
    const int ranks = grid.ranks();
    std::vector<std::vector<int>> groups(static_cast<size_t>(ranks));
    std::vector<std::vector<int>> rings(static_cast<size_t>(ranks));
    const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
      const AttentionProblem p{1, 4 * ranks, 4, 2, 8, MaskKind::kCausal, DType::kF32, 0.25f};
      SEQPAR_ASSIGN_OR_RETURN(Layout layout,
                              Layout::make(LayoutKind::kHybridZigzag, p.seq, ranks, grid.ulysses));
      const SchemeContext context{p, SchemeKind::kHybrid, layout, &comm, Device::kHost, nullptr, 0};
      SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Scheme> scheme,
                              scheme_descriptor(SchemeKind::kHybrid).create(context));
      const std::span<Communicator* const> subgroups = scheme->subgroups();
      if (subgroups.size() != 2) return SEQPAR_FAIL(StatusCode::kInternal, "not 2 subgroups");
      const int me = comm.rank();
      for (auto [sub, members] :
           {std::pair{subgroups[0], &groups}, std::pair{subgroups[1], &rings}}) {
        std::vector<int>& mine = (*members)[static_cast<size_t>(me)];
        mine.resize(static_cast<size_t>(sub->size()));
        SEQPAR_RETURN_IF_ERROR(sub->all_gather(&me, mine.data(), sizeof(int)));
      }
      return Status::ok();
    });
    ASSERT_TRUE(status.is_ok()) << status.to_string();
    for (int r = 0; r < ranks; ++r) {
      const int g = r / grid.ulysses, u = r % grid.ulysses;
      std::vector<int> group(static_cast<size_t>(grid.ulysses));
      std::iota(group.begin(), group.end(), g * grid.ulysses);
      std::vector<int> ring;
      for (int k = 0; k < grid.rings; ++k) ring.push_back(k * grid.ulysses + u);
      EXPECT_EQ(groups[static_cast<size_t>(r)], group) << "group of rank " << r;
      EXPECT_EQ(rings[static_cast<size_t>(r)], ring) << "ring of rank " << r;
    }
  }
}

// U x R = 4 x 2, B = 1, S = 32 (t = 4 tokens per rank, 16 per group), Hq = 6, Hkv = 2, D = 8,
// fp32. Group slices (q, kv): (2, 1), (1, 1), (2, 1), (1, 1); K = 4 kv slices. One head of 4
// tokens is 4 * 8 * 4 = 128 bytes; a ring shard's K (16 tokens, 1 kv head) is 512 bytes.
TEST(HybridCommFormula, MatchesHandCount) {
  const AttentionProblem p{1, 32, 6, 2, 8, MaskKind::kCausal, DType::kF32, 0.0f};
  const int64_t head = 128, stat = 4 * 4, kv = 512;
  testing::for_schedule_and_oracle(
      SchemeKind::kHybrid, {p, 8, 4}, [&](const auto& f, const auto& b) {
        // Rank 0 (u = 0: 2 q heads): Q of the other 4 heads, K and V of the other 3 slices; O + LSE
        // of its 2 heads to 3 places; one ring exchange of K and V.
        EXPECT_EQ(f(0)[CommOp::kAllToAll], 2);
        EXPECT_EQ(f(0)[CommOp::kExchange], 1);
        EXPECT_EQ(f(0).bytes_sent, 4 * head + 2 * 3 * head + 3 * 2 * (head + stat) + 2 * kv);
        EXPECT_EQ(f(5).bytes_sent, 5 * head + 2 * 3 * head + 3 * (head + stat) + 2 * kv);  // u = 1
        // Backward, rank 0: Q, dO, O of 4 heads, K, V of 3 slices, LSE of 4 heads; dQ (2 heads) and
        // dK, dV (1 head each) to 3 places; the ring's K,V shift and dK,dV share.
        EXPECT_EQ(b(0)[CommOp::kAllToAll], 2);
        EXPECT_EQ(b(0)[CommOp::kExchange], 2);
        EXPECT_EQ(b(0).bytes_sent,
                  3 * 4 * head + 2 * 3 * head + 4 * stat + 3 * (2 + 2) * head + 2 * 2 * kv);
      });
  // U = 1 is a zigzag ring over P groups (plus two local-copy all-to-alls); R = 1 sends only the
  // group's all-to-alls.
  const oracle::Shape zigzag_grid{p, 4, 1}, ulysses_grid{p, 4, 4};
  EXPECT_EQ(testing::schedule_comm(SchemeKind::kHybrid, zigzag_grid, Pass::kForward)[2].bytes_sent,
            oracle::forward(SchemeKind::kZigzag, zigzag_grid, 2).bytes_sent);
  EXPECT_EQ(testing::schedule_comm(SchemeKind::kHybrid, ulysses_grid,
                                   Pass::kForward)[1][CommOp::kExchange],
            0);
}

TEST(HybridGrid, ChoosesTheWidestGroupInsideANodeThatTheHeadsAllow) {
  auto grid_of = [](int ranks, int64_t heads, int ranks_per_node, int ulysses) {
    PlanConfig config;
    config.scheme = SchemeKind::kHybrid;
    config.problem = AttentionProblem{1, 64, heads, 1, 8, MaskKind::kCausal, DType::kF32, 0.0f};
    config.ranks_per_node = ranks_per_node;
    config.ulysses_degree = ulysses;
    return hybrid_grid(config, ranks);
  };
  EXPECT_EQ(grid_of(8, 8, 0, 0)->ulysses, 8);  // all on one node: all Ulysses
  EXPECT_EQ(grid_of(8, 8, 4, 0)->ulysses, 4);  // groups stay inside a node
  EXPECT_EQ(grid_of(8, 3, 0, 0)->ulysses, 2);  // 3 heads: the largest divisor <= 3
  EXPECT_EQ(grid_of(6, 4, 0, 0)->ulysses, 3);
  EXPECT_EQ(grid_of(6, 4, 0, 0)->rings, 2);
  EXPECT_EQ(grid_of(8, 8, 4, 2)->ulysses, 2);  // explicit U wins
  const auto not_dividing = grid_of(8, 8, 0, 3);
  ASSERT_FALSE(not_dividing.is_ok());
  EXPECT_NE(not_dividing.status().message().find("U = 3 to divide the 8 ranks"), std::string::npos)
      << not_dividing.status().message();
  const auto too_few_heads = grid_of(8, 2, 0, 4);
  ASSERT_FALSE(too_few_heads.is_ok());
  EXPECT_NE(too_few_heads.status().message().find("H = 2, U = 4"), std::string::npos)
      << too_few_heads.status().message();
}

// Plan::create fails on every rank, naming the rank and the rule.
void expect_rejected_on_every_rank(int ranks, const PlanConfig& config, const std::string& rule) {
  std::vector<Status> statuses(static_cast<size_t>(ranks));
  std::mutex mutex;
  (void)run_threads(ranks, [&](Communicator& comm) -> Status {
    const Status s = Plan::create(config, comm).status();
    std::lock_guard<std::mutex> lock(mutex);
    statuses[static_cast<size_t>(comm.rank())] = s;
    return Status::ok();  // every rank reports; none aborts the others
  });
  for (int r = 0; r < ranks; ++r) {
    const Status& s = statuses[static_cast<size_t>(r)];
    EXPECT_FALSE(s.is_ok()) << "rank " << r;
    EXPECT_NE(s.message().find(rule), std::string::npos) << "rank " << r << ": " << s.message();
    EXPECT_NE(s.to_string().find("rank " + std::to_string(r)), std::string::npos) << s.to_string();
  }
}

TEST(HybridRejects, BadGridsAndSequencesOnEveryRank) {
  PlanConfig config;
  config.scheme = SchemeKind::kHybrid;
  config.problem = AttentionProblem{1, 4094, 8, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  config.ulysses_degree = 3;  // 3 x 2 needs S % 2R == 0: 2R = 4 equal zigzag chunks
  expect_rejected_on_every_rank(6, config, "seq 4094 is not divisible by 4");
  config.ulysses_degree = 4;
  expect_rejected_on_every_rank(6, config, "U = 4 to divide the 6 ranks");
}

TEST(HybridRejects, RanksThatDisagreeOnTheUlyssesDegree) {
  std::vector<Status> statuses(4);
  std::mutex mutex;
  (void)run_threads(4, [&](Communicator& comm) -> Status {
    PlanConfig config;
    config.scheme = SchemeKind::kHybrid;
    config.problem = AttentionProblem{1, 64, 8, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
    config.ulysses_degree = comm.rank() == 3 ? 4 : 2;
    const Status s = Plan::create(config, comm).status();
    std::lock_guard<std::mutex> lock(mutex);
    statuses[static_cast<size_t>(comm.rank())] = s;
    return Status::ok();
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch) << s.to_string();
    EXPECT_NE(s.message().find("ulysses_degree is 2 on rank 0 but 4 on rank 3"), std::string::npos)
        << s.message();
  }
}

}  // namespace
}  // namespace seqpar
