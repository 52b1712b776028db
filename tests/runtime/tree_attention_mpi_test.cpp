// Tree attention under mpirun (np 1..4, oversubscribed): forward and backward against the fp64
// reference and communication against the formula, for every tree case.
#include <gtest/gtest.h>
#include <mpi.h>

#include "checked_step.hpp"
#include "comm/mpi_communicator.hpp"
#include "tree_cases.hpp"

namespace seqpar {
namespace {

TEST(TreeAttentionMpi, MatchesReferenceAndCommFormula) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  for (const testing::TreeCase& c : testing::tree_cases()) {
    SCOPED_TRACE(c.name());
    ASSERT_NO_FATAL_FAILURE(testing::expect_checked_step(
        testing::tree_options_for(c, comm.value()->size()), *comm.value()));
  }
}

}  // namespace
}  // namespace seqpar
