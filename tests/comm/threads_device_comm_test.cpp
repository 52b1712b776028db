// The threads backend on device memory (Device::kCuda, the ranks sharing one GPU or the
// emulator): the shared comm checks for P = 1..4 with every rank on a compute stream of its own,
// and on the legacy default stream; the ordering of the communication with the ranks' compute
// streams (what a rank's memsets write right before a post is what its peers receive, and the
// compute-stream work it enqueues after wait() sees the received data, with no host
// synchronisation in between); that posts and waits never wait for the device; that the device
// reductions give the host rule's bits; and timeouts, aborts and mismatches. Skips without a
// visible CUDA device; a build without CUDA checks that Device::kCuda is refused.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "comm/threads/threads_communicator.hpp"
#include "comm_checks.hpp"
#include "device_comm_checks.hpp"
#include "tests/support/cuda_visible.hpp"

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"

namespace seqpar::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Runs body(comm) on P device-memory thread ranks; with own_streams each rank first sets a
// non-blocking compute stream of its own (else all use the legacy default stream).
Status run_on_device(int ranks, bool own_streams, const std::function<Status(Communicator&)>& body,
                     milliseconds timeout = milliseconds(20'000)) {
  return run_threads(
      ranks,
      [&](Communicator& comm) -> Status {
        comm.set_timeout(timeout);
        CudaStream compute;
        if (own_streams) {
          SEQPAR_RETURN_IF_ERROR(compute.create());
          SEQPAR_RETURN_IF_ERROR(comm.set_stream(compute.get()));
        }
        return body(comm);
      },
      Device::kCuda);
}

// ---- the shared checks ----

class ThreadsDeviceCommTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SEQPAR_SKIP_WITHOUT_CUDA_DEVICE(); }
};

TEST_P(ThreadsDeviceCommTest, DeviceMemoryAndStreams) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, [](Communicator& comm) -> Status {
    SEQPAR_REQUIRE(comm.device_memory(), StatusCode::kInternal, "not a device-memory communicator");
    return Status::ok();
  }));
}

TEST_P(ThreadsDeviceCommTest, EveryCheckOnOwnComputeStreams) {
  for (const NamedCheck& c : kCommChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, c.check));
  }
}

TEST_P(ThreadsDeviceCommTest, EveryCheckOnTheLegacyDefaultStream) {
  for (const NamedCheck& c : kCommChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_on_device(GetParam(), false, c.check));
  }
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsDeviceCommTest, ::testing::Values(1, 2, 3, 4));

// ---- the reduction kernel against the host rule ----

// all_reduce and reduce_scatter on device memory give the host rule's bits (P = 3).
TEST(ThreadsDeviceReductions, MatchTheHostRuleBitwise) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  constexpr size_t kCount = 1001;  // per rank slice of reduce_scatter
  SEQPAR_EXPECT_OK(run_on_device(
      3, true, [](Communicator& comm) { return reductions_match_the_host_rule(comm, kCount); }));
}

// ---- ordering with the compute streams ----

// The ordering checks of device_comm_checks.hpp, each rank on a compute stream of its own.
constexpr int kIterations = 40;

class ThreadsDeviceOrderingTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SEQPAR_SKIP_WITHOUT_CUDA_DEVICE(); }
};

TEST_P(ThreadsDeviceOrderingTest, ExchangeFollowsTheComputeStreams) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, [](Communicator& comm) {
    return exchange_follows_the_compute_stream(comm, kIterations);
  }));
}

TEST_P(ThreadsDeviceOrderingTest, CollectivesFollowTheComputeStreams) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, [](Communicator& comm) {
    return collectives_follow_the_compute_stream(comm, kIterations);
  }));
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsDeviceOrderingTest, ::testing::Values(2, 3, 4));

// Each rank's compute stream is kept busy (memsets of a large buffer) before it posts an
// exchange; the exchange's copies can only run after that work. A post or a wait that waited for
// the device would return only after the work is done; here the host comes back from both while
// the work is still queued, at least once in a few tries (one try is nearly always enough).
TEST(ThreadsDeviceHost, PostAndWaitDoNotWaitForTheDevice) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  constexpr size_t kBusyBytes = size_t{64} << 20;
  constexpr int kBusyMemsets = 8;
  constexpr int kTries = 5;
  std::vector<int> returned_early(2, 0);
  SEQPAR_EXPECT_OK(run_on_device(2, true, [&](Communicator& comm) -> Status {
    const auto compute = static_cast<cudaStream_t>(comm.stream());
    DeviceBuffer busy, send, recv;
    SEQPAR_RETURN_IF_ERROR(busy.allocate(kBusyBytes));
    SEQPAR_RETURN_IF_ERROR(send.allocate(64));
    SEQPAR_RETURN_IF_ERROR(recv.allocate(64));
    CudaEvent busy_done;
    SEQPAR_RETURN_IF_ERROR(busy_done.create());
    const int peer = 1 - comm.rank();
    for (int attempt = 0; attempt < kTries; ++attempt) {
      for (int m = 0; m < kBusyMemsets; ++m) {
        SEQPAR_CUDA_CHECK(cudaMemsetAsync(busy.data(), m, kBusyBytes, compute));
      }
      SEQPAR_CUDA_CHECK(cudaEventRecord(busy_done.get(), compute));
      const P2POp ops[] = {P2POp::send(peer, send.data(), 64), P2POp::recv(peer, recv.data(), 64)};
      SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
      const cudaError_t query = cudaEventQuery(busy_done.get());
      if (query == cudaErrorNotReady) {
        returned_early[static_cast<size_t>(comm.rank())] += 1;
      } else {
        SEQPAR_CUDA_CHECK(query);
      }
      SEQPAR_CUDA_CHECK(cudaStreamSynchronize(compute));
      SEQPAR_RETURN_IF_ERROR(comm.barrier());
    }
    return Status::ok();
  }));
  EXPECT_GT(returned_early[0] + returned_early[1], 0)
      << "post + wait never returned before the device ran the work queued before the post";
}

// ---- failures ----

TEST(ThreadsDeviceFailures, SendWithoutRecvTimesOut) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const auto start = Clock::now();
  const Status status = run_on_device(
      2, true,
      [](Communicator& comm) -> Status {
        if (comm.rank() == 1) return Status::ok();  // never posts the matching recv
        DeviceBuffer buffer;
        SEQPAR_RETURN_IF_ERROR(buffer.allocate(16));
        const P2POp ops[] = {P2POp::send(1, buffer.data(), 16)};
        return comm.exchange(ops);
      },
      milliseconds(200));
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
  EXPECT_NE(status.message().find("exchange"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("send to rank 1"), std::string::npos) << status.message();
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
}

TEST(ThreadsDeviceFailures, CollectiveTimeoutNamesMissingRank) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const Status status = run_on_device(
      3, true,
      [](Communicator& comm) -> Status {
        if (comm.rank() == 2) return Status::ok();
        DeviceBuffer send, recv;
        SEQPAR_RETURN_IF_ERROR(send.allocate(8));
        SEQPAR_RETURN_IF_ERROR(recv.allocate(8 * 3));
        return comm.all_gather(send.data(), recv.data(), 8);
      },
      milliseconds(200));
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
  EXPECT_NE(status.message().find("all_gather"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("ranks [2]"), std::string::npos) << status.message();
}

TEST(ThreadsDeviceFailures, FailingRankAbortsTheOthers) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  std::vector<Status> seen(4);
  const auto start = Clock::now();
  const Status status = run_on_device(4, true, [&](Communicator& comm) -> Status {
    if (comm.rank() == 2) return SEQPAR_FAIL(StatusCode::kInvalidArgument, "bad shape on purpose");
    DeviceBuffer value;
    SEQPAR_RETURN_IF_ERROR(value.allocate(sizeof(float)));
    Status result = comm.all_reduce(value.data(), value.data(), 1, DType::kF32, ReduceOp::kSum);
    seen[static_cast<size_t>(comm.rank())] = result;
    return result;
  });
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.to_string();
  for (int r : {0, 1, 3}) {
    EXPECT_EQ(seen[static_cast<size_t>(r)].code(), StatusCode::kAborted)
        << seen[static_cast<size_t>(r)].to_string();
  }
}

TEST(ThreadsDeviceFailures, AllToAllSizeMismatchIsReported) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const Status status = run_on_device(2, true, [](Communicator& comm) -> Status {
    DeviceBuffer send, recv;
    SEQPAR_RETURN_IF_ERROR(send.allocate(32));
    SEQPAR_RETURN_IF_ERROR(recv.allocate(32));
    // Rank 0 expects 8 bytes from rank 1, which sends it 4.
    const size_t offsets[] = {0, 16};
    const size_t mine[] = {4, 4};
    const size_t expects_more[] = {4, 8};
    const bool rank0 = comm.rank() == 0;
    return comm.all_to_all_v(send.data(), mine, offsets, recv.data(), rank0 ? expects_more : mine,
                             offsets);
  });
  EXPECT_EQ(status.code(), StatusCode::kMismatch) << status.to_string();
}

}  // namespace
}  // namespace seqpar::testing

#else  // no CUDA in this build

namespace seqpar::testing {
namespace {

TEST(ThreadsDeviceComm, RefusedWithoutCuda) {
  auto comms = make_threads_communicators(2, Device::kCuda);
  EXPECT_EQ(comms.status().code(), StatusCode::kUnsupported) << comms.status().to_string();
  const Status status = run_threads(
      2, [](Communicator&) { return Status::ok(); }, Device::kCuda);
  EXPECT_EQ(status.code(), StatusCode::kUnsupported) << status.to_string();
}

}  // namespace
}  // namespace seqpar::testing

#endif

namespace seqpar::testing {
namespace {

TEST(ThreadsHostComm, HostCommunicatorHasNoStream) {
  SEQPAR_EXPECT_OK(run_threads(2, [](Communicator& comm) -> Status {
    SEQPAR_REQUIRE(!comm.device_memory(), StatusCode::kInternal, "host communicator on device");
    SEQPAR_REQUIRE(comm.set_stream(nullptr).code() == StatusCode::kInvalidArgument,
                   StatusCode::kInternal, "a host-memory communicator took a stream");
    return Status::ok();
  }));
}

}  // namespace
}  // namespace seqpar::testing
