// Hybrid under mpirun (np 1, 2, 4; oversubscribed): every U x R grid of the world (np 4: 1 x 4,
// 2 x 2, 4 x 1), forward and backward against the fp64 reference, and every rank's
// communication (plan communicator and subgroups) against its own formula. Results are combined
// across ranks by the MPI test main.
#include <gtest/gtest.h>
#include <mpi.h>

#include "checked_step.hpp"
#include "comm/mpi_communicator.hpp"
#include "hybrid_cases.hpp"

namespace seqpar {
namespace {

TEST(HybridMpi, MatchReferenceAndCommFormulaOnEveryGrid) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  const int ranks = comm.value()->size();
  for (int ulysses = 1; ulysses <= ranks; ++ulysses) {
    if (ranks % ulysses != 0) continue;
    const testing::HybridGridCase grid{ulysses, ranks / ulysses};
    for (const testing::SchemeCase& c : testing::hybrid_cases(ulysses)) {
      SCOPED_TRACE(str_cat(c.name(), " U=", grid.ulysses, " R=", grid.rings));
      StepReport report;
      ASSERT_NO_FATAL_FAILURE(testing::expect_checked_step(testing::hybrid_options_for(c, grid),
                                                           *comm.value(), &report));
      EXPECT_EQ(report.measured_comm[CommOp::kAllToAll], 4);
      EXPECT_EQ(report.measured_comm[CommOp::kExchange], 3 * (grid.rings - 1));
    }
  }
}

}  // namespace
}  // namespace seqpar
