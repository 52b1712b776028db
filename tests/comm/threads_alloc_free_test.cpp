// Threads backend, P in {2, 3, 4, 8}: warm exchange steps of the ring-scheme pattern, and warm
// collectives, allocate nothing on any rank. Global operator new is replaced in this binary
// (counting_new.cpp).
#include <chrono>

#include "alloc_free_checks.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {
namespace {

class ThreadsAllocFreeTest : public ::testing::TestWithParam<int> {};

TEST_P(ThreadsAllocFreeTest, ExchangeStepsAllocateNothingOnceWarm) {
  SEQPAR_EXPECT_OK(run_threads(GetParam(), [](Communicator& comm) {
    comm.set_timeout(std::chrono::milliseconds(20'000));
    return check_exchange_steps_allocate_nothing(comm);
  }));
}

TEST_P(ThreadsAllocFreeTest, CollectivesAllocateNothingOnceWarm) {
  SEQPAR_EXPECT_OK(run_threads(GetParam(), [](Communicator& comm) {
    comm.set_timeout(std::chrono::milliseconds(20'000));
    return check_collectives_allocate_nothing(comm);
  }));
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsAllocFreeTest, ::testing::Values(2, 3, 4, 8));

}  // namespace
}  // namespace seqpar::testing
