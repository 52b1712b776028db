// MPI backend under mpirun (np 1..4): every op through the shared checks, on a communicator
// adopted from MPI_COMM_WORLD.
#include <mpi.h>

#include <chrono>

#include "comm/mpi_communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {
namespace {

Status run_check(Status (*check)(Communicator&)) {
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, make_mpi_communicator(MPI_COMM_WORLD));
  comm->set_timeout(std::chrono::milliseconds(60'000));
  return check(*comm);
}

TEST(comm_mpi, ExchangeRing) { SEQPAR_EXPECT_OK(run_check(check_exchange_ring)); }
TEST(comm_mpi, AllToAllEqual) { SEQPAR_EXPECT_OK(run_check(check_all_to_all_equal)); }
TEST(comm_mpi, AllToAllUneven) { SEQPAR_EXPECT_OK(run_check(check_all_to_all_uneven)); }
TEST(comm_mpi, AllGather) { SEQPAR_EXPECT_OK(run_check(check_all_gather)); }
TEST(comm_mpi, ReduceScatter) { SEQPAR_EXPECT_OK(run_check(check_reduce_scatter)); }
TEST(comm_mpi, AllReduce) { SEQPAR_EXPECT_OK(run_check(check_all_reduce)); }
TEST(comm_mpi, Broadcast) { SEQPAR_EXPECT_OK(run_check(check_broadcast)); }
TEST(comm_mpi, Barrier) { SEQPAR_EXPECT_OK(run_check(check_barrier)); }
TEST(comm_mpi, Split) { SEQPAR_EXPECT_OK(run_check(check_split)); }
TEST(comm_mpi, NonBlocking) { SEQPAR_EXPECT_OK(run_check(check_nonblocking)); }
TEST(comm_mpi, Stats) { SEQPAR_EXPECT_OK(run_check(check_stats)); }

TEST(comm_mpi, BackendFacts) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(comm.value()->rank(), rank);
  EXPECT_EQ(comm.value()->size(), size);
  EXPECT_STREQ(comm.value()->backend_name(), "mpi");
  EXPECT_FALSE(comm.value()->device_memory());
}

}  // namespace
}  // namespace seqpar::testing
