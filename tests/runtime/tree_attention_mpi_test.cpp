// Tree attention under mpirun (np 1..4, oversubscribed): forward and backward against the fp64
// reference and communication against the formula, for every tree case.
#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/mpi_communicator.hpp"
#include "launch/training_step.hpp"
#include "tree_cases.hpp"

namespace seqpar {
namespace {

TEST(TreeAttentionMpi, MatchesReferenceAndCommFormula) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  for (const testing::TreeCase& c : testing::tree_cases()) {
    SCOPED_TRACE(c.name());
    const RunOptions options = testing::tree_options_for(c, comm.value()->size());
    StatusOr<StepReport> report = run_training_step(options, *comm.value());
    ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    const CheckErrors& e = *report->errors;
    EXPECT_LE(e.out, e.tolerance);
    EXPECT_LE(e.lse, e.tolerance);
    EXPECT_LE(e.dq, e.tolerance);
    EXPECT_LE(e.dk, e.tolerance);
    EXPECT_LE(e.dv, e.tolerance);
    EXPECT_TRUE(report->comm_matches_formula)
        << report->measured_comm.bytes_sent << " bytes vs formula "
        << report->expected_comm.bytes_sent;
  }
}

}  // namespace
}  // namespace seqpar
