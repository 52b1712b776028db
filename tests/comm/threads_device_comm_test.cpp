// The threads backend on device memory (Device::kCuda, the ranks sharing one GPU or the
// emulator): the shared comm checks for P = 1..4 with every rank on a compute stream of its own,
// and on the legacy default stream; the ordering of the communication with the ranks' compute
// streams (what a rank's memsets write right before a post is what its peers receive, and the
// compute-stream work it enqueues after wait() sees the received data, with no host
// synchronisation in between); that posts and waits never wait for the device; that the device
// reductions give the host rule's bits; and timeouts, aborts and mismatches. Skips without a
// visible CUDA device; a build without CUDA checks that Device::kCuda is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/host_reduce.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "comm_buffers.hpp"
#include "comm_checks.hpp"

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

#define SKIP_WITHOUT_DEVICE()                                                              \
  if (cuda_device_count() == 0)                                                            \
  GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none): the threads " \
                  "backend cannot move device memory here"

// ---- the shared checks ----

struct NamedCheck {
  const char* name;
  Status (*check)(Communicator&);
};
constexpr NamedCheck kChecks[] = {{"exchange_ring", check_exchange_ring},
                                  {"all_to_all_equal", check_all_to_all_equal},
                                  {"all_to_all_uneven", check_all_to_all_uneven},
                                  {"all_gather", check_all_gather},
                                  {"reduce_scatter", check_reduce_scatter},
                                  {"all_reduce", check_all_reduce},
                                  {"broadcast", check_broadcast},
                                  {"barrier", check_barrier},
                                  {"split", check_split},
                                  {"nonblocking", check_nonblocking},
                                  {"stats", check_stats}};

class ThreadsDeviceCommTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SKIP_WITHOUT_DEVICE(); }
};

TEST_P(ThreadsDeviceCommTest, DeviceMemoryAndStreams) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, [](Communicator& comm) -> Status {
    SEQPAR_REQUIRE(comm.device_memory(), StatusCode::kInternal, "not a device-memory communicator");
    return Status::ok();
  }));
}

TEST_P(ThreadsDeviceCommTest, EveryCheckOnOwnComputeStreams) {
  for (const NamedCheck& c : kChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, c.check));
  }
}

TEST_P(ThreadsDeviceCommTest, EveryCheckOnTheLegacyDefaultStream) {
  for (const NamedCheck& c : kChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_on_device(GetParam(), false, c.check));
  }
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsDeviceCommTest, ::testing::Values(1, 2, 3, 4));

// ---- the reduction kernel against the host rule ----

// Element i of rank `rank`'s input: many significant bits, so sums round (in range for fp16 sums
// of a few ranks, and for i32).
void fill_random(std::vector<uint8_t>& data, DType dtype, size_t count, int rank) {
  data.assign(count * dtype_size(dtype), 0);
  uint64_t state = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank + 1);
  for (size_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t n = static_cast<int64_t>((state >> 33) % 2000001) - 1000000;
    switch (dtype) {
      case DType::kF64:
        reinterpret_cast<double*>(data.data())[i] = static_cast<double>(n) / 997.0;
        break;
      case DType::kI32:
        reinterpret_cast<int32_t*>(data.data())[i] = static_cast<int32_t>(n);
        break;
      case DType::kI64:
        reinterpret_cast<int64_t*>(data.data())[i] = n * 1000003;
        break;
      default:
        store_float(data.data(), dtype, i, static_cast<float>(n) / 997.0f);
        break;
    }
  }
}

// all_reduce and reduce_scatter on device memory give, bit for bit, what comm/host_reduce.hpp's
// rank-order rule gives on the host for the same inputs, in every dtype, sum and max.
TEST(ThreadsDeviceReductions, MatchTheHostRuleBitwise) {
  SKIP_WITHOUT_DEVICE();
  constexpr int kRanks = 3;
  constexpr size_t kCount = 1001;  // per rank slice of reduce_scatter; all_reduce's whole buffer
  for (DType dtype :
       {DType::kF32, DType::kBF16, DType::kF16, DType::kF64, DType::kI32, DType::kI64}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      SCOPED_TRACE(str_cat(dtype_name(dtype), op == ReduceOp::kSum ? " sum" : " max"));
      const size_t element = dtype_size(dtype);
      std::vector<std::vector<uint8_t>> inputs(kRanks);
      std::vector<const void*> pointers;
      for (int r = 0; r < kRanks; ++r) {
        fill_random(inputs[static_cast<size_t>(r)], dtype, kCount * kRanks, r);
        pointers.push_back(inputs[static_cast<size_t>(r)].data());
      }
      std::vector<uint8_t> all_reduced(kCount * kRanks * element);
      reduce_in_order(pointers, 0, kCount * kRanks, dtype, op, all_reduced.data());
      SEQPAR_EXPECT_OK(run_on_device(kRanks, true, [&](Communicator& comm) -> Status {
        const size_t r = static_cast<size_t>(comm.rank());
        std::vector<uint8_t> input = inputs[r];
        std::vector<uint8_t> reduced(kCount * kRanks * element), slice(kCount * element);
        CommBuffers mem(comm);
        const uint8_t* input_at = mem.place(input);
        uint8_t* reduced_at = mem.place(reduced);
        uint8_t* slice_at = mem.place(slice);
        SEQPAR_RETURN_IF_ERROR(mem.status());
        SEQPAR_RETURN_IF_ERROR(comm.all_reduce(input_at, reduced_at, kCount * kRanks, dtype, op));
        SEQPAR_RETURN_IF_ERROR(comm.reduce_scatter(input_at, slice_at, kCount, dtype, op));
        SEQPAR_RETURN_IF_ERROR(mem.fetch());
        SEQPAR_REQUIRE(reduced == all_reduced, StatusCode::kInternal, "rank ", r,
                       ": all_reduce differs from the host rule");
        SEQPAR_REQUIRE(std::equal(slice.begin(), slice.end(),
                                  all_reduced.begin() + static_cast<ptrdiff_t>(r * slice.size())),
                       StatusCode::kInternal, "rank ", r,
                       ": reduce_scatter differs from the host rule");
        return Status::ok();
      }));
    }
  }
}

// ---- ordering with the compute streams ----

constexpr int kIterations = 40;
constexpr size_t kMessageBytes = 4096;

// The byte rank `rank` sends in iteration `it` (never 0xEE, the scribble, nor 0xFF, the
// emulator's poison of unwritten device memory).
unsigned char message_byte(int rank, int it) {
  return static_cast<unsigned char>(1 + (rank * 37 + it * 11) % 200);
}

// An all-`value` check of `bytes` downloaded bytes.
Status expect_bytes(const std::vector<unsigned char>& got, size_t offset, size_t bytes,
                    unsigned char value, const std::string& what) {
  for (size_t i = 0; i < bytes; ++i) {
    SEQPAR_REQUIRE(got[offset + i] == value, StatusCode::kInternal, what, ": byte ", i, " is ",
                   int{got[offset + i]}, ", expected ", int{value});
  }
  return Status::ok();
}

// Every iteration: the rank's compute stream scribbles over its send buffer and then writes this
// iteration's bytes (memsets enqueued right before the post); a ring exchange; the compute stream
// then copies the received bytes into the iteration's slot of a log. The host never waits for the
// device until the end, when the log is downloaded. A copy that started before the sender's
// memset, or wrote the receive buffer before the previous log copy read it, or a log copy that
// ran before the data arrived, leaves a wrong byte in the log.
Status exchange_follows_the_compute_streams(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const int next = (r + 1) % p;
  const int prev = (r + p - 1) % p;
  const auto compute = static_cast<cudaStream_t>(comm.stream());
  DeviceBuffer send, recv, log;
  SEQPAR_RETURN_IF_ERROR(send.allocate(kMessageBytes));
  SEQPAR_RETURN_IF_ERROR(recv.allocate(kMessageBytes));
  SEQPAR_RETURN_IF_ERROR(log.allocate(kMessageBytes * kIterations));
  auto* log_at = static_cast<unsigned char*>(log.data());
  for (int it = 0; it < kIterations; ++it) {
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(send.data(), 0xEE, kMessageBytes, compute));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(send.data(), message_byte(r, it), kMessageBytes, compute));
    const P2POp ops[] = {P2POp::send(next, send.data(), kMessageBytes),
                         P2POp::recv(prev, recv.data(), kMessageBytes)};
    SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(log_at + it * kMessageBytes, recv.data(), kMessageBytes,
                                      cudaMemcpyDeviceToDevice, compute));
  }
  std::vector<unsigned char> got(kMessageBytes * kIterations);
  SEQPAR_CUDA_CHECK(
      cudaMemcpyAsync(got.data(), log_at, got.size(), cudaMemcpyDeviceToHost, compute));
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(compute));
  for (int it = 0; it < kIterations; ++it) {
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, it * kMessageBytes, kMessageBytes, message_byte(prev, it),
                     str_cat("rank ", r, " iteration ", it, " from rank ", prev)));
  }
  return Status::ok();
}

// The same for collectives: each iteration the compute stream scribbles and then writes the
// rank's input (i32 elements of four equal bytes), then an in-place all_reduce (sum) and an
// all_gather of the input, and copies both results into the log.
Status collectives_follow_the_compute_streams(Communicator& comm) {
  constexpr size_t kCount = 256;  // i32 elements
  constexpr size_t kBytes = kCount * sizeof(int32_t);
  const int p = comm.size();
  const int r = comm.rank();
  const auto compute = static_cast<cudaStream_t>(comm.stream());
  const size_t gathered_bytes = kBytes * static_cast<size_t>(p);
  const size_t log_step = kBytes + gathered_bytes;
  DeviceBuffer input, sum, gathered, log;
  SEQPAR_RETURN_IF_ERROR(input.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(sum.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(gathered.allocate(gathered_bytes));
  SEQPAR_RETURN_IF_ERROR(log.allocate(log_step * kIterations));
  auto* log_at = static_cast<unsigned char*>(log.data());
  // Small bytes, so that the sum of P of them is still one byte repeated.
  auto input_byte = [](int rank, int it) {
    return static_cast<unsigned char>(1 + (rank + it) % 9);
  };
  for (int it = 0; it < kIterations; ++it) {
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(input.data(), 0xEE, kBytes, compute));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(input.data(), input_byte(r, it), kBytes, compute));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(sum.data(), 0xEE, kBytes, compute));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(sum.data(), input_byte(r, it), kBytes, compute));
    SEQPAR_RETURN_IF_ERROR(
        comm.all_reduce(sum.data(), sum.data(), kCount, DType::kI32, ReduceOp::kSum));
    SEQPAR_RETURN_IF_ERROR(comm.all_gather(input.data(), gathered.data(), kBytes));
    unsigned char* slot = log_at + it * log_step;
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(slot, sum.data(), kBytes, cudaMemcpyDeviceToDevice, compute));
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(slot + kBytes, gathered.data(), gathered_bytes,
                                      cudaMemcpyDeviceToDevice, compute));
  }
  std::vector<unsigned char> got(log_step * kIterations);
  SEQPAR_CUDA_CHECK(
      cudaMemcpyAsync(got.data(), log_at, got.size(), cudaMemcpyDeviceToHost, compute));
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(compute));
  for (int it = 0; it < kIterations; ++it) {
    int total = 0;
    for (int q = 0; q < p; ++q) total += input_byte(q, it);
    const size_t at = it * log_step;
    SEQPAR_RETURN_IF_ERROR(expect_bytes(got, at, kBytes, static_cast<unsigned char>(total),
                                        str_cat("rank ", r, " iteration ", it, " all_reduce")));
    for (int q = 0; q < p; ++q) {
      SEQPAR_RETURN_IF_ERROR(
          expect_bytes(got, at + kBytes + q * kBytes, kBytes, input_byte(q, it),
                       str_cat("rank ", r, " iteration ", it, " all_gather slice ", q)));
    }
  }
  return Status::ok();
}

class ThreadsDeviceOrderingTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SKIP_WITHOUT_DEVICE(); }
};

TEST_P(ThreadsDeviceOrderingTest, ExchangeFollowsTheComputeStreams) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, exchange_follows_the_compute_streams));
}

TEST_P(ThreadsDeviceOrderingTest, CollectivesFollowTheComputeStreams) {
  SEQPAR_EXPECT_OK(run_on_device(GetParam(), true, collectives_follow_the_compute_streams));
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsDeviceOrderingTest, ::testing::Values(2, 3, 4));

// Each rank's compute stream is kept busy (memsets of a large buffer) before it posts an
// exchange; the exchange's copies can only run after that work. A post or a wait that waited for
// the device would return only after the work is done; here the host comes back from both while
// the work is still queued, at least once in a few tries (one try is nearly always enough).
TEST(ThreadsDeviceHost, PostAndWaitDoNotWaitForTheDevice) {
  SKIP_WITHOUT_DEVICE();
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
  SKIP_WITHOUT_DEVICE();
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
  SKIP_WITHOUT_DEVICE();
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
  SKIP_WITHOUT_DEVICE();
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
  SKIP_WITHOUT_DEVICE();
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
