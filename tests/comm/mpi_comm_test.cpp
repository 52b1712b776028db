// MPI backend under mpirun (np 1..4): every op through the shared checks, on a communicator
// adopted from MPI_COMM_WORLD.
#include <mpi.h>

#include <chrono>
#include <thread>
#include <vector>

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

// progress() moves a posted 4 MiB message (past Open MPI's eager limit: a rendezvous) while the
// receiver "computes" instead of waiting: rank 1 sends and waits; rank 0 only calls progress()
// between naps until the message's last byte has landed (without progress calls it lands only
// in rank 0's wait), then waits and checks every byte. Ranks past 1 only join the barrier.
TEST(comm_mpi, ProgressMovesAPostedMessageBeforeTheWait) {
  auto made = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  Communicator& comm = *made.value();
  if (comm.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  comm.set_timeout(std::chrono::milliseconds(30'000));
  constexpr size_t kBytes = size_t{4} << 20;
  auto byte_at = [](size_t i) { return static_cast<unsigned char>(i * 7 + 3); };
  std::vector<unsigned char> buffer(kBytes, 0);
  bool landed_before_wait = true;
  if (comm.rank() == 1) {
    for (size_t i = 0; i < kBytes; ++i) buffer[i] = byte_at(i);
    const P2POp send[] = {P2POp::send(0, buffer.data(), kBytes)};
    SEQPAR_EXPECT_OK(comm.exchange(send));
  } else if (comm.rank() == 0) {
    Request request;
    const P2POp recv[] = {P2POp::recv(1, buffer.data(), kBytes)};
    SEQPAR_EXPECT_OK(comm.start_exchange(recv, request));
    const volatile unsigned char* last = buffer.data() + kBytes - 1;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (*last != byte_at(kBytes - 1) && std::chrono::steady_clock::now() < give_up) {
      comm.progress();
      std::this_thread::sleep_for(std::chrono::microseconds(100));  // "computing"
    }
    landed_before_wait = *last == byte_at(kBytes - 1);
    SEQPAR_EXPECT_OK(comm.wait(request));
    for (size_t i = 0; i < kBytes; ++i) {
      ASSERT_EQ(buffer[i], byte_at(i)) << "byte " << i;
    }
  }
  SEQPAR_EXPECT_OK(comm.barrier());
  EXPECT_TRUE(landed_before_wait) << "10 s of progress() calls did not move the message";
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
