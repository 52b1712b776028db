// MPI backend under mpirun (np 2..4): warm exchange steps of the ring-scheme pattern, and warm
// collectives, make no C++ heap allocation on any rank. Global operator new is replaced in this
// binary (counting_new.cpp). Open MPI's own allocations (malloc, inside MPI_Isend/Irecv/Testall
// and the collectives) are C and cannot be seen by counting operator new, so the rule asserted
// is: our code makes no C++ allocation per step.
#include <mpi.h>

#include <chrono>

#include "alloc_free_checks.hpp"
#include "comm/mpi_communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {
namespace {

TEST(comm_mpi_alloc_free, ExchangeStepsAllocateNothingOnceWarm) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  comm.value()->set_timeout(std::chrono::milliseconds(60'000));
  SEQPAR_EXPECT_OK(check_exchange_steps_allocate_nothing(*comm.value()));
}

TEST(comm_mpi_alloc_free, CollectivesAllocateNothingOnceWarm) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  comm.value()->set_timeout(std::chrono::milliseconds(60'000));
  SEQPAR_EXPECT_OK(check_collectives_allocate_nothing(*comm.value()));
}

}  // namespace
}  // namespace seqpar::testing
