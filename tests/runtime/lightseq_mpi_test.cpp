// lightseq under mpirun (np 1..4, oversubscribed): forward and backward against the fp64
// reference and every rank's communication against its own formula. Results are combined
// across ranks by the MPI test main, so a failing rank fails the test.
#include <gtest/gtest.h>
#include <mpi.h>

#include "checked_step.hpp"
#include "comm/mpi_communicator.hpp"
#include "lightseq_cases.hpp"

namespace seqpar {
namespace {

TEST(LightSeqMpi, MatchReferenceAndCommFormula) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  for (const testing::SchemeCase& c : testing::lightseq_cases()) {
    SCOPED_TRACE(c.name());
    ASSERT_NO_FATAL_FAILURE(
        testing::expect_checked_step(testing::options_for(c, comm.value()->size()), *comm.value()));
  }
}

}  // namespace
}  // namespace seqpar
