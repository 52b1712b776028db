// Threads backend on device memory, P in {1, 2, 3, 4}: warm exchange steps of the ring-scheme
// pattern, and warm collectives, allocate nothing on any rank (events come from pools filled
// while warming up). Global operator new is replaced in this binary (counting_new.cpp), and the
// CUDA runtime's own allocations are left out of the count (uncounted_cuda_calls.cpp). Each rank
// runs on a compute stream of its own. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <chrono>

#include "alloc_free_checks.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "comm_checks.hpp"

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/device_buffer.hpp"

namespace seqpar::testing {
namespace {

Status run_on_device(int ranks, Status (*check)(Communicator&)) {
  return run_threads(
      ranks,
      [check](Communicator& comm) -> Status {
        comm.set_timeout(std::chrono::milliseconds(20'000));
        CudaStream compute;
        SEQPAR_RETURN_IF_ERROR(compute.create());
        SEQPAR_RETURN_IF_ERROR(comm.set_stream(compute.get()));
        return check(comm);
      },
      Device::kCuda);
}

class ThreadsDeviceAllocFreeTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) {
      GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none): the threads "
                      "backend cannot move device memory here";
    }
  }
};

TEST_P(ThreadsDeviceAllocFreeTest, ExchangeStepsAllocateNothingOnceWarm) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), check_exchange_steps_allocate_nothing));
}

TEST_P(ThreadsDeviceAllocFreeTest, CollectivesAllocateNothingOnceWarm) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), check_collectives_allocate_nothing));
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsDeviceAllocFreeTest, ::testing::Values(1, 2, 3, 4));

}  // namespace
}  // namespace seqpar::testing

#else
TEST(ThreadsDeviceAllocFreeTest, SkippedWithoutCudaToolkit) {
  GTEST_SKIP() << "built without the CUDA toolkit (SEQPAR_HAVE_CUDA off): no device memory";
}
#endif
