// The MPI backend on device memory under mpirun (np 2 and 4; label gpu, so the emulated build
// runs it): every op through the shared checks, in the staged mode and in the CUDA-aware mode
// (when the library reports CUDA support; and, in the emulated build, forced, since its device
// memory is host memory that any MPI can read), on a compute stream of each rank's own and on
// the legacy default stream; the ordering of the transfers with the compute stream (memsets
// enqueued right before a post are what the peers receive, and the work enqueued after wait()
// sees the received data, without any host synchronisation in between: with the emulator's
// random stream interleaving, a missing event wait shows up as a wrong byte); reductions giving
// the host rule's bits; warm steps allocating nothing; timeouts; the mode's choice. Skips without
// a visible CUDA device; a build without CUDA checks that Device::kCuda is refused.
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "alloc_free_checks.hpp"
#include "comm/host_reduce.hpp"
#include "comm/mpi_communicator.hpp"
#include "comm_buffers.hpp"
#include "comm_checks.hpp"

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"

namespace seqpar::testing {
namespace {

using std::chrono::milliseconds;

struct ModeCase {
  const char* name;
  MpiDeviceMode mode;
};
void PrintTo(const ModeCase& mode, std::ostream* os) { *os << mode.name; }

#ifdef SEQPAR_CUDA_EMULATION
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

// The modes that can run here. Not skipped case by case: ctest takes one skipped case for a
// skipped binary (SKIP_REGULAR_EXPRESSION), so a CUDA-aware mode that cannot run is left out,
// and CudaAwareModeNeedsTheLibrarysSupport says so.
std::vector<ModeCase> modes_here() {
  std::vector<ModeCase> modes = {{"Staged", MpiDeviceMode::kStaged}};
  if (mpi_library_cuda_aware()) {
    modes.push_back({"CudaAware", MpiDeviceMode::kCudaAware});
  } else if (kEmulated) {
    // Emulated device memory is host memory, which any MPI reads: the CUDA-aware path runs.
    modes.push_back({"CudaAwareOnEmulatedMemory", MpiDeviceMode::kCudaAware});
  }
  return modes;
}

#define SKIP_WITHOUT_DEVICE()                                                            \
  if (cuda_device_count() == 0)                                                          \
  GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none): no device " \
                  "memory to move"

// Runs check(comm) on a device-memory communicator over MPI_COMM_WORLD in `mode`, with a
// non-blocking compute stream of this rank's own (or the legacy default stream).
Status run_check(MpiDeviceMode mode, bool own_stream, Status (*check)(Communicator&),
                 milliseconds timeout = milliseconds(60'000)) {
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                          make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda, mode));
  comm->set_timeout(timeout);
  CudaStream compute;
  if (own_stream) {
    SEQPAR_RETURN_IF_ERROR(compute.create());
    SEQPAR_RETURN_IF_ERROR(comm->set_stream(compute.get()));
  }
  const Status status = check(*comm);
  SEQPAR_CUDA_CHECK(cudaDeviceSynchronize());  // nothing of the check's still runs
  return status;
}

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

// ---- ordering with the compute stream ----

constexpr int kIterations = 30;
constexpr size_t kMessageBytes = 4096;

// The byte rank `rank` sends in iteration `it` (never 0xEE, the scribble, nor 0xFF, the
// emulator's poison of unwritten device memory).
unsigned char message_byte(int rank, int it) {
  return static_cast<unsigned char>(1 + (rank * 37 + it * 11) % 200);
}

Status expect_bytes(const std::vector<unsigned char>& got, size_t offset, size_t bytes,
                    unsigned char value, const std::string& what) {
  for (size_t i = 0; i < bytes; ++i) {
    SEQPAR_REQUIRE(got[offset + i] == value, StatusCode::kInternal, what, ": byte ", i, " is ",
                   int{got[offset + i]}, ", expected ", int{value});
  }
  return Status::ok();
}

// Downloads `log` on the compute stream and waits: the test's only host synchronisation.
StatusOr<std::vector<unsigned char>> download(DeviceBuffer& log, cudaStream_t compute) {
  std::vector<unsigned char> got(log.bytes());
  SEQPAR_CUDA_CHECK(
      cudaMemcpyAsync(got.data(), log.data(), got.size(), cudaMemcpyDeviceToHost, compute));
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(compute));
  return got;
}

// Every iteration: the compute stream scribbles over the send buffer and then writes this
// iteration's bytes (memsets enqueued right before the post); a ring exchange; the compute
// stream then copies the received bytes into the iteration's slot of a log. A copy out that ran
// before the memset, a copy in that overwrote the receive buffer before the previous log copy
// read it, or a log copy that ran before the copy in, leaves a wrong byte in the log.
Status exchange_follows_the_compute_stream(Communicator& comm) {
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
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<unsigned char> got, download(log, compute));
  for (int it = 0; it < kIterations; ++it) {
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, it * kMessageBytes, kMessageBytes, message_byte(prev, it),
                     str_cat("rank ", r, " iteration ", it, " from rank ", prev)));
  }
  return Status::ok();
}

// The same for collectives: the compute stream scribbles and then writes the rank's input (i32
// elements of four equal bytes), then an in-place all_reduce (sum), an all_gather and a
// broadcast from a rotating root, whose results are copied into the log.
Status collectives_follow_the_compute_stream(Communicator& comm) {
  constexpr size_t kCount = 256;  // i32 elements
  constexpr size_t kBytes = kCount * sizeof(int32_t);
  const int p = comm.size();
  const int r = comm.rank();
  const auto compute = static_cast<cudaStream_t>(comm.stream());
  const size_t gathered_bytes = kBytes * static_cast<size_t>(p);
  const size_t log_step = 2 * kBytes + gathered_bytes;
  DeviceBuffer input, sum, gathered, cast, log;
  SEQPAR_RETURN_IF_ERROR(input.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(sum.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(gathered.allocate(gathered_bytes));
  SEQPAR_RETURN_IF_ERROR(cast.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(log.allocate(log_step * kIterations));
  auto* log_at = static_cast<unsigned char*>(log.data());
  // Small bytes, so that the sum of P of them is still one byte repeated.
  auto input_byte = [](int rank, int it) {
    return static_cast<unsigned char>(1 + (rank + it) % 9);
  };
  for (int it = 0; it < kIterations; ++it) {
    for (void* buffer : {input.data(), sum.data(), cast.data()}) {
      SEQPAR_CUDA_CHECK(cudaMemsetAsync(buffer, 0xEE, kBytes, compute));
      SEQPAR_CUDA_CHECK(cudaMemsetAsync(buffer, input_byte(r, it), kBytes, compute));
    }
    SEQPAR_RETURN_IF_ERROR(
        comm.all_reduce(sum.data(), sum.data(), kCount, DType::kI32, ReduceOp::kSum));
    SEQPAR_RETURN_IF_ERROR(comm.all_gather(input.data(), gathered.data(), kBytes));
    SEQPAR_RETURN_IF_ERROR(comm.broadcast(cast.data(), kBytes, it % p));
    unsigned char* slot = log_at + it * log_step;
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(slot, sum.data(), kBytes, cudaMemcpyDeviceToDevice, compute));
    SEQPAR_CUDA_CHECK(
        cudaMemcpyAsync(slot + kBytes, cast.data(), kBytes, cudaMemcpyDeviceToDevice, compute));
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(slot + 2 * kBytes, gathered.data(), gathered_bytes,
                                      cudaMemcpyDeviceToDevice, compute));
  }
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<unsigned char> got, download(log, compute));
  for (int it = 0; it < kIterations; ++it) {
    int total = 0;
    for (int q = 0; q < p; ++q) total += input_byte(q, it);
    const size_t at = it * log_step;
    const std::string where = str_cat("rank ", r, " iteration ", it);
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, at, kBytes, static_cast<unsigned char>(total), where + " all_reduce"));
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, at + kBytes, kBytes, input_byte(it % p, it), where + " broadcast"));
    for (int q = 0; q < p; ++q) {
      SEQPAR_RETURN_IF_ERROR(expect_bytes(got, at + 2 * kBytes + q * kBytes, kBytes,
                                          input_byte(q, it),
                                          str_cat(where, " all_gather slice ", q)));
    }
  }
  return Status::ok();
}

// ---- reductions against the host rule ----

// Element i of rank `rank`'s input: many significant bits, so sums round.
std::vector<uint8_t> random_input(DType dtype, size_t count, int rank) {
  std::vector<uint8_t> data(count * dtype_size(dtype), 0);
  uint64_t state = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank + 1);
  for (size_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t n = static_cast<int64_t>((state >> 33) % 2000001) - 1000000;
    if (dtype == DType::kF64) {
      reinterpret_cast<double*>(data.data())[i] = static_cast<double>(n) / 997.0;
    } else if (dtype == DType::kI32) {
      reinterpret_cast<int32_t*>(data.data())[i] = static_cast<int32_t>(n);
    } else {
      store_float(data.data(), dtype, i, static_cast<float>(n) / 997.0f);
    }
  }
  return data;
}

// all_reduce and reduce_scatter give, bit for bit, comm/host_reduce.hpp's rank-order rule.
Status reductions_match_the_host_rule(Communicator& comm) {
  constexpr size_t kCount = 301;  // reduce_scatter's slice; all_reduce's whole buffer
  const int p = comm.size();
  const size_t r = static_cast<size_t>(comm.rank());
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kF64, DType::kI32}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      const size_t element = dtype_size(dtype);
      const size_t total = kCount * static_cast<size_t>(p);
      std::vector<std::vector<uint8_t>> inputs;
      std::vector<const void*> pointers;
      for (int q = 0; q < p; ++q) inputs.push_back(random_input(dtype, total, q));
      for (const auto& input : inputs) pointers.push_back(input.data());
      std::vector<uint8_t> expected(total * element);
      reduce_in_order(pointers, 0, total, dtype, op, expected.data());
      std::vector<uint8_t> input = inputs[r], reduced(total * element), slice(kCount * element);
      CommBuffers mem(comm);
      const uint8_t* input_at = mem.place(input);
      uint8_t* reduced_at = mem.place(reduced);
      uint8_t* slice_at = mem.place(slice);
      SEQPAR_RETURN_IF_ERROR(mem.status());
      SEQPAR_RETURN_IF_ERROR(comm.all_reduce(input_at, reduced_at, total, dtype, op));
      SEQPAR_RETURN_IF_ERROR(comm.reduce_scatter(input_at, slice_at, kCount, dtype, op));
      SEQPAR_RETURN_IF_ERROR(mem.fetch());
      const std::string what = str_cat(dtype_name(dtype), op == ReduceOp::kSum ? " sum" : " max");
      SEQPAR_REQUIRE(reduced == expected, StatusCode::kInternal, "rank ", r, " ", what,
                     ": all_reduce differs from the host rule");
      SEQPAR_REQUIRE(std::equal(slice.begin(), slice.end(),
                                expected.begin() + static_cast<ptrdiff_t>(r * slice.size())),
                     StatusCode::kInternal, "rank ", r, " ", what,
                     ": reduce_scatter differs from the host rule");
    }
  }
  return Status::ok();
}

// ---- the cases, per mode ----

class MpiDeviceCommTest : public ::testing::TestWithParam<ModeCase> {
 protected:
  void SetUp() override { SKIP_WITHOUT_DEVICE(); }
  MpiDeviceMode mode() const { return GetParam().mode; }
};

TEST_P(MpiDeviceCommTest, ReportsItsMode) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda, mode());
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  EXPECT_STREQ(comm.value()->backend_name(), "mpi");
  EXPECT_TRUE(comm.value()->device_memory());
  EXPECT_STREQ(mpi_transfer_mode(*comm.value()),
               mode() == MpiDeviceMode::kStaged ? "staged" : "cuda-aware");
}

TEST_P(MpiDeviceCommTest, EveryCheckOnItsOwnComputeStream) {
  for (const NamedCheck& c : kChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_check(mode(), true, c.check));
  }
}

TEST_P(MpiDeviceCommTest, EveryCheckOnTheLegacyDefaultStream) {
  for (const NamedCheck& c : kChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_check(mode(), false, c.check));
  }
}

TEST_P(MpiDeviceCommTest, ExchangeFollowsTheComputeStream) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, exchange_follows_the_compute_stream));
}

TEST_P(MpiDeviceCommTest, CollectivesFollowTheComputeStream) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, collectives_follow_the_compute_stream));
}

TEST_P(MpiDeviceCommTest, ReductionsMatchTheHostRuleBitwise) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, reductions_match_the_host_rule));
}

// Warm steps create no event, stream or staging buffer, and make no C++ allocation (the
// emulated runtime's own are left out: counting_new.hpp).
TEST_P(MpiDeviceCommTest, WarmExchangeStepsAllocateNothing) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, check_exchange_steps_allocate_nothing));
}

TEST_P(MpiDeviceCommTest, WarmCollectivesAllocateNothing) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, check_collectives_allocate_nothing));
}

// A receive whose sender never sends times out, naming the op and the peer; the dropped op's
// receive is withdrawn, so the communicator still works after.
TEST_P(MpiDeviceCommTest, RecvWithoutSendTimesOut) {
  auto made = make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda, mode());
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  Communicator& comm = *made.value();
  comm.set_timeout(milliseconds(300));
  DeviceBuffer buffer;
  ASSERT_TRUE(buffer.allocate(64).is_ok());
  if (comm.rank() == 0) {
    const P2POp recv[] = {P2POp::recv(1, buffer.data(), 64)};
    const Status status = comm.exchange(recv);
    EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
    EXPECT_NE(status.message().find("exchange"), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("recv from rank 1"), std::string::npos) << status.message();
  }
  comm.set_timeout(milliseconds(60'000));
  SEQPAR_EXPECT_OK(comm.barrier());
  SEQPAR_EXPECT_OK(run_check(mode(), true, check_exchange_ring));
}

INSTANTIATE_TEST_SUITE_P(comm, MpiDeviceCommTest, ::testing::ValuesIn(modes_here()),
                         [](const ::testing::TestParamInfo<ModeCase>& param) {
                           return std::string(param.param.name);
                         });

// The CUDA-aware mode is refused unless the library reports CUDA support (emulated device memory
// excepted), and the test says which it is.
TEST(MpiDeviceMode, CudaAwareModeNeedsTheLibrarysSupport) {
  SKIP_WITHOUT_DEVICE();
  auto comm = make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda, MpiDeviceMode::kCudaAware);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (mpi_library_cuda_aware() || kEmulated) {
    ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
    EXPECT_STREQ(mpi_transfer_mode(*comm.value()), "cuda-aware");
  } else {
    EXPECT_EQ(comm.status().code(), StatusCode::kUnsupported) << comm.status().to_string();
  }
  if (rank == 0 && !mpi_library_cuda_aware()) {
    std::printf(
        "note: this MPI library does not report CUDA support (MPIX_Query_cuda_support): "
        "the CUDA-aware mode %s\n",
        kEmulated ? "runs here on emulated device memory only (CudaAwareOnEmulatedMemory)"
                  : "is not tested here");
  }
}

// SEQPAR_MPI_CUDA_AWARE=0 makes the automatic choice stage, whatever the library reports.
TEST(MpiDeviceMode, EnvironmentForcesStaging) {
  SKIP_WITHOUT_DEVICE();
  ASSERT_EQ(setenv("SEQPAR_MPI_CUDA_AWARE", "0", 1), 0);
  auto comm = make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda);
  unsetenv("SEQPAR_MPI_CUDA_AWARE");
  ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
  EXPECT_STREQ(mpi_transfer_mode(*comm.value()), "staged");
  auto automatic = make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda);
  ASSERT_TRUE(automatic.is_ok()) << automatic.status().to_string();
  EXPECT_STREQ(mpi_transfer_mode(*automatic.value()),
               mpi_library_cuda_aware() ? "cuda-aware" : "staged");
  auto host = make_mpi_communicator(MPI_COMM_WORLD);
  ASSERT_TRUE(host.is_ok()) << host.status().to_string();
  EXPECT_STREQ(mpi_transfer_mode(*host.value()), "host");
}

}  // namespace
}  // namespace seqpar::testing

#else
namespace seqpar::testing {
namespace {

TEST(MpiDeviceMode, RefusedWithoutCuda) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD, Device::kCuda);
  EXPECT_EQ(comm.status().code(), StatusCode::kUnsupported) << comm.status().to_string();
}

}  // namespace
}  // namespace seqpar::testing
#endif
