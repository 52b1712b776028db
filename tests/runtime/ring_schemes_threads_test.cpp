// Ring, striped and zigzag on the threads backend, P in {1, 2, 3, 4, 8}: forward and backward
// against the fp64 reference with asserted tolerances, and communication against the formula.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <mutex>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "comm_oracles.hpp"
#include "harness/test_data.hpp"
#include "harness/training_step.hpp"
#include "runtime/plan.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

using testing::SchemeCase;

class RingSchemes : public ::testing::TestWithParam<std::tuple<SchemeCase, int>> {};

TEST_P(RingSchemes, MatchReferenceAndCommFormula) {
  const auto& [c, ranks] = GetParam();
  testing::expect_checked_step_on_threads(testing::options_for(c, ranks), ranks);
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<SchemeCase, int>>& info) {
  return str_cat(std::get<0>(info.param).name(), "_P", std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllRanks, RingSchemes,
                         ::testing::Combine(::testing::ValuesIn(testing::scheme_cases()),
                                            ::testing::Values(1, 2, 3, 4, 8)),
                         case_name);

// The schedule and the oracle, by hand, for one case: B=1, S=64 over P=4, Hkv=2, D=8, fp32.
TEST(RingCommFormula, MatchesHandCount) {
  const AttentionProblem p{1, 64, 4, 2, 8, MaskKind::kCausal, DType::kF32, 0.0f};
  const int64_t kv = 1 * 16 * 2 * 8 * 4;  // one of K or V per rank: 1024 bytes
  for (SchemeKind s : {SchemeKind::kRing, SchemeKind::kStriped, SchemeKind::kZigzag}) {
    SCOPED_TRACE(scheme_name(s));
    for (const int ranks : {4, 1}) {
      const oracle::Shape shape{p, ranks};
      const std::vector<CommVolume> fwd = testing::schedule_comm(s, shape, Pass::kForward);
      const std::vector<CommVolume> bwd = testing::schedule_comm(s, shape, Pass::kBackward);
      for (const CommVolume& v : {fwd[0], oracle::forward(s, shape, 0)}) {
        EXPECT_EQ(v[CommOp::kExchange], ranks - 1);
        EXPECT_EQ(v.bytes_sent, ranks == 4 ? 3 * 2 * kv : 0);
      }
      for (const CommVolume& v : {bwd[0], oracle::backward(s, shape, 0)}) {
        EXPECT_EQ(v[CommOp::kExchange], 2 * (ranks - 1));
        EXPECT_EQ(v.bytes_sent, ranks == 4 ? 6 * 2 * kv : 0);
      }
    }
  }
}

// Runs Plan::create on `ranks` threads with a per-rank config; returns every rank's status.
std::vector<Status> create_plans(int ranks, const std::function<PlanConfig(int)>& config_of) {
  return testing::statuses_on_threads(ranks, [&](Communicator& comm) {
    return Plan::create(config_of(comm.rank()), comm).status();
  });
}

PlanConfig good_config() {
  PlanConfig c;
  c.scheme = SchemeKind::kZigzag;
  c.problem = AttentionProblem{1, 64, 8, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  return c;
}

void expect_every_rank_fails(const std::vector<Status>& statuses, StatusCode code,
                             const std::string& words) {
  for (size_t r = 0; r < statuses.size(); ++r) {
    EXPECT_EQ(statuses[r].code(), code) << "rank " << r << ": " << statuses[r].to_string();
    EXPECT_NE(statuses[r].message().find(words), std::string::npos) << statuses[r].message();
    EXPECT_NE(statuses[r].message().find("rank " + std::to_string(r)), std::string::npos)
        << statuses[r].message();
  }
}

TEST(PlanRejects, SequenceThatDoesNotSplit) {
  auto statuses = create_plans(4, [](int) {
    PlanConfig c = good_config();
    c.problem.seq = 4095;
    return c;
  });
  expect_every_rank_fails(statuses, StatusCode::kInvalidArgument, "not divisible by 8");
}

TEST(PlanRejects, HeadsNotDivisibleByKvHeads) {
  auto statuses = create_plans(2, [](int) {
    PlanConfig c = good_config();
    c.problem.heads_kv = 3;
    return c;
  });
  expect_every_rank_fails(statuses, StatusCode::kInvalidArgument, "multiple of kv-heads");
}

TEST(PlanRejects, UnsupportedHeadDim) {
  auto statuses = create_plans(2, [](int) {
    PlanConfig c = good_config();
    c.problem.head_dim = 100;
    return c;
  });
  expect_every_rank_fails(statuses, StatusCode::kInvalidArgument, "head dim 100 is unsupported");
}

TEST(PlanRejects, MoreRanksThanTokens) {
  auto statuses = create_plans(8, [](int) {
    PlanConfig c = good_config();
    c.scheme = SchemeKind::kRing;
    c.problem.seq = 4;
    return c;
  });
  expect_every_rank_fails(statuses, StatusCode::kInvalidArgument, "more ranks (8) than tokens");
}

TEST(PlanRejects, ShapesThatDifferBetweenRanksOnEveryRankWithoutHanging) {
  const auto start = std::chrono::steady_clock::now();
  auto statuses = create_plans(4, [](int rank) {
    PlanConfig c = good_config();
    if (rank == 2) c.problem.seq = 128;
    return c;
  });
  expect_every_rank_fails(statuses, StatusCode::kMismatch, "seq is 64 on rank 0 but 128 on rank 2");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(PlanRejects, ProblemsWhoseSizesOverflow) {
  auto statuses = create_plans(2, [](int) {
    PlanConfig c = good_config();
    c.problem.batch = int64_t{1} << 62;
    return c;
  });
  expect_every_rank_fails(statuses, StatusCode::kInvalidArgument, "problem too large");
}

// One rank passes a null tensor: it fails, and the others fail at once (aborted), not after
// the communication timeout.
TEST(PlanExecute, MissingTensorOnOneRankFailsEveryRankFast) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<Status> statuses(4);
  (void)run_threads(4, [&](Communicator& comm) -> Status {
    comm.set_timeout(std::chrono::seconds(60));
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(good_config(), comm));
    RankTensors t;
    SEQPAR_RETURN_IF_ERROR(t.allocate(plan->problem(), plan->local_seq()));
    ForwardArgs args{t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()};
    if (comm.rank() == 1) args.out = nullptr;
    statuses[static_cast<size_t>(comm.rank())] = plan->forward(args);
    return Status::ok();
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(statuses[1].code(), StatusCode::kInvalidArgument) << statuses[1].to_string();
  EXPECT_NE(statuses[1].message().find("forward needs"), std::string::npos);
  for (int r : {0, 2, 3}) {
    EXPECT_EQ(statuses[static_cast<size_t>(r)].code(), StatusCode::kAborted)
        << "rank " << r << ": " << statuses[static_cast<size_t>(r)].to_string();
  }
}

// A NaN in one rank's K fails that rank's step with the finite check's message (before any
// communication) and every other rank's by the abort, for the ring family and the head-sharded
// and tree schemes alike, with uneven shards too. With PlanConfig::check_finite off, the same
// step returns ok on every rank.
TEST(PlanExecute, NonFiniteInputFailsTheStepOnEveryRank) {
  for (const SchemeKind scheme : {SchemeKind::kZigzag, SchemeKind::kUlysses, SchemeKind::kTree}) {
    for (const bool check : {true, false}) {
      SCOPED_TRACE(str_cat(scheme_name(scheme), check ? " checked" : " unchecked"));
      std::vector<Status> statuses(4);
      std::mutex mutex;
      (void)run_threads(4, [&](Communicator& comm) -> Status {
        PlanConfig config = good_config();
        config.scheme = scheme;
        config.check_finite = check;
        if (scheme != SchemeKind::kZigzag) config.problem.seq = 66;  // shards of 17, 17, 16, 16
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
        RankTensors t;
        SEQPAR_RETURN_IF_ERROR(t.allocate(plan->problem(), plan->local_seq()));
        for (const auto& [input, buffer] :
             {std::pair{InputTensor::kQ, &t.q}, std::pair{InputTensor::kK, &t.k},
              std::pair{InputTensor::kV, &t.v}}) {
          fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 3, input, buffer->data());
        }
        if (comm.rank() == 2) t.k.as<float>()[5] = std::nanf("");
        const Status s =
            plan->forward({t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()});
        std::lock_guard<std::mutex> lock(mutex);
        statuses[static_cast<size_t>(comm.rank())] = s;
        return Status::ok();
      });
      for (size_t r = 0; r < statuses.size(); ++r) {
        if (!check) {
          EXPECT_TRUE(statuses[r].is_ok()) << "rank " << r << ": " << statuses[r].to_string();
        } else if (r == 2) {
          EXPECT_EQ(statuses[r].code(), StatusCode::kInvalidArgument) << statuses[r].to_string();
          EXPECT_NE(statuses[r].message().find("K holds 1 non-finite value(s)"), std::string::npos)
              << statuses[r].message();
          EXPECT_NE(statuses[r].to_string().find("rank 2"), std::string::npos);
        } else {
          EXPECT_FALSE(statuses[r].is_ok()) << "rank " << r;
        }
      }
    }
  }
}

TEST(PlanRejects, DeviceTensorsWithoutCudaKernels) {
  auto statuses = create_plans(2, [](int) {
    PlanConfig c = good_config();
    c.device = Device::kCuda;
    return c;
  });
  // The threads backend moves host memory: the plan names the mismatch before anything else.
  expect_every_rank_fails(statuses, StatusCode::kInvalidArgument, "backend moves host memory");
}

}  // namespace
}  // namespace seqpar
