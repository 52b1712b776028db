// MPI backend under mpirun (np 1..4): every op through the shared checks, on a communicator
// adopted from MPI_COMM_WORLD.
#include <mpi.h>

#include <chrono>

#include "comm/mpi_communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {
namespace {

Status run_check(Status (*check)(Communicator&)) {
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                          make_mpi_communicator(MPI_COMM_WORLD));
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

// Ops are pooled: a receive dropped unwaited is cancelled before its op is reused, so the next
// message from that peer lands in the next receive (were it still posted, it would take the
// message and the exchange below would time out).
TEST(comm_mpi, DroppedRecvIsCancelledBeforeItsOpIsReused) {
  auto made = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  Communicator& comm = *made.value();
  comm.set_timeout(std::chrono::milliseconds(20'000));
  const int next = (comm.rank() + 1) % comm.size();
  const int prev = (comm.rank() + comm.size() - 1) % comm.size();
  int dropped_landing = -1, landing = -1;
  const int sent = 100 + comm.rank();
  {
    Request dropped;
    const P2POp recv[] = {P2POp::recv(prev, &dropped_landing, sizeof(int))};
    SEQPAR_EXPECT_OK(comm.start_exchange(recv, dropped));
  }
  SEQPAR_EXPECT_OK(comm.barrier());
  const P2POp ops[] = {P2POp::send(next, &sent, sizeof(int)),
                       P2POp::recv(prev, &landing, sizeof(int))};
  SEQPAR_EXPECT_OK(comm.exchange(ops));
  EXPECT_EQ(landing, 100 + prev);
  EXPECT_EQ(dropped_landing, -1);
}

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
