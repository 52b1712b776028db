// Ring, striped and zigzag under mpirun (run with np 1..4, oversubscribed): forward and backward
// against the fp64 reference, communication against the formula, and bad input failing on every
// rank. Results are combined across ranks by the MPI test main, so a failing rank fails the test.
#include <gtest/gtest.h>
#include <mpi.h>

#include "checked_step.hpp"
#include "comm/mpi_communicator.hpp"
#include "mpi_world.hpp"
#include "runtime/plan.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

using testing::mpi_world;

TEST(RingSchemesMpi, MatchReferenceAndCommFormula) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  for (const testing::SchemeCase& c : testing::scheme_cases()) {
    SCOPED_TRACE(c.name());
    ASSERT_NO_FATAL_FAILURE(
        testing::expect_checked_step(testing::options_for(c, comm->size()), *comm));
  }
}

TEST(RingSchemesMpi, MismatchedShapesFailOnEveryRank) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  PlanConfig config;
  config.scheme = SchemeKind::kRing;
  config.problem = AttentionProblem{1, 64, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  if (comm->rank() == comm->size() - 1) config.problem.heads_q = 8;
  StatusOr<std::unique_ptr<Plan>> plan = Plan::create(config, *comm);
  if (comm->size() == 1) {
    EXPECT_TRUE(plan.is_ok());
  } else {
    ASSERT_FALSE(plan.is_ok());
    EXPECT_EQ(plan.status().code(), StatusCode::kMismatch);
    EXPECT_NE(plan.status().message().find("heads is 4 on rank 0 but 8 on rank"), std::string::npos)
        << plan.status().message();
  }
}

TEST(RingSchemesMpi, IndivisibleSequenceFailsOnEveryRank) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  PlanConfig config;
  config.scheme = SchemeKind::kZigzag;
  config.problem =
      AttentionProblem{1, 2 * comm->size() * 8 + 1, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  StatusOr<std::unique_ptr<Plan>> plan = Plan::create(config, *comm);
  ASSERT_FALSE(plan.is_ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("not divisible"), std::string::npos)
      << plan.status().message();
}

}  // namespace
}  // namespace seqpar
