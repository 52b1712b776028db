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
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "alloc_free_checks.hpp"
#include "comm/mpi_communicator.hpp"
#include "comm_checks.hpp"
#include "device_comm_checks.hpp"
#include "tests/support/cuda_visible.hpp"

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

// The ordering checks' iterations, and the reductions' reduce_scatter slice per rank.
constexpr int kIterations = 30;
constexpr size_t kReductionCount = 301;

// ---- the cases, per mode ----

class MpiDeviceCommTest : public ::testing::TestWithParam<ModeCase> {
 protected:
  void SetUp() override { SEQPAR_SKIP_WITHOUT_CUDA_DEVICE(); }
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
  for (const NamedCheck& c : kCommChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_check(mode(), true, c.check));
  }
}

TEST_P(MpiDeviceCommTest, EveryCheckOnTheLegacyDefaultStream) {
  for (const NamedCheck& c : kCommChecks) {
    SCOPED_TRACE(c.name);
    SEQPAR_EXPECT_OK(run_check(mode(), false, c.check));
  }
}

TEST_P(MpiDeviceCommTest, ExchangeFollowsTheComputeStream) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, [](Communicator& comm) {
    return exchange_follows_the_compute_stream(comm, kIterations);
  }));
}

TEST_P(MpiDeviceCommTest, CollectivesFollowTheComputeStream) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, [](Communicator& comm) {
    return collectives_follow_the_compute_stream(comm, kIterations);
  }));
}

TEST_P(MpiDeviceCommTest, ReductionsMatchTheHostRuleBitwise) {
  SEQPAR_EXPECT_OK(run_check(mode(), true, [](Communicator& comm) {
    return reductions_match_the_host_rule(comm, kReductionCount);
  }));
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
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
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
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
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
