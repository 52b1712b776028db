// Ulysses under mpirun (np 1..4, oversubscribed): forward and backward against the fp64
// reference, every rank's communication against its own formula, and Hq < P failing on every
// rank. Results are combined across ranks by the MPI test main.
#include <gtest/gtest.h>
#include <mpi.h>

#include "checked_step.hpp"
#include "comm/mpi_communicator.hpp"
#include "mpi_world.hpp"
#include "runtime/plan.hpp"
#include "ulysses_cases.hpp"

namespace seqpar {
namespace {

using testing::mpi_world;

TEST(UlyssesMpi, MatchReferenceAndCommFormula) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  for (const testing::SchemeCase& c : testing::ulysses_cases(comm->size())) {
    SCOPED_TRACE(c.name());
    ASSERT_NO_FATAL_FAILURE(
        testing::expect_checked_step(testing::options_for(c, comm->size()), *comm));
  }
}

TEST(UlyssesMpi, FewerQueryHeadsThanRanksFailsOnEveryRank) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  PlanConfig config;
  config.scheme = SchemeKind::kUlysses;
  const int64_t heads = comm->size() > 1 ? comm->size() - 1 : 1;
  config.problem =
      AttentionProblem{1, 16 * comm->size(), heads, 1, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  StatusOr<std::unique_ptr<Plan>> plan = Plan::create(config, *comm);
  if (comm->size() == 1) {
    EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  } else {
    ASSERT_FALSE(plan.is_ok());
    EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(plan.status().message().find("at least as many query heads (H) as ranks (P)"),
              std::string::npos)
        << plan.status().message();
  }
}

}  // namespace
}  // namespace seqpar
