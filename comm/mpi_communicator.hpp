#pragma once
// The MPI backend: host buffers (or device buffers: Device::kCuda, comm/mpi_device_communicator.hpp
// says how they move, CUDA-aware or staged through host memory), non-blocking MPI calls on a
// private duplicate of the caller's communicator (our traffic never matches the caller's). Waits
// poll MPI_Testall until done or the timeout; abort() calls MPI_Abort. On host buffers, bf16/fp16
// reductions go through fp32 scratch buffers (one rounding at the end), and since MPI does not
// promise a reduction order, they are not guaranteed to be in rank order, unlike the threads
// backend's (device buffers' reductions are, on the host: mpi_device_communicator.hpp). Sizes above
// INT_MAX: exchange messages are split into chunks; collectives and all_to_all_v pieces fail with
// kUnsupported. split() uses MPI_Comm_split, which is blocking and not bounded by timeout(). Only
// in builds with SEQPAR_HAVE_MPI.
#include <mpi.h>

#include <memory>

#include "comm/communicator.hpp"
#include "core/tensor.hpp"

namespace seqpar {

// How a device-memory MPI communicator moves device buffers.
enum class MpiDeviceMode : int {
  kAuto = 0,   // CUDA-aware when the library reports it, unless SEQPAR_MPI_CUDA_AWARE=0
  kStaged,     // through page-locked host buffers
  kCudaAware,  // device pointers to MPI: refused (kUnsupported) unless the library reports CUDA
               // support, or the build is emulated (its device memory is host memory)
};

// A communicator over the ranks of `comm` (duplicated; the duplicate is freed with the result),
// moving `device` memory (`mode` is for Device::kCuda only). MPI must be initialised by the
// caller. Device::kCuda: kUnsupported in a build without CUDA or without a visible device.
StatusOr<std::unique_ptr<Communicator>> make_mpi_communicator(
    MPI_Comm comm, Device device = Device::kHost, MpiDeviceMode mode = MpiDeviceMode::kAuto);

// Whether the MPI library reports CUDA support (Open MPI: MPIX_Query_cuda_support(); false where
// the library has no such query).
bool mpi_library_cuda_aware();

// How an mpi communicator moves its buffers: "host", "cuda-aware" or "staged" (for the tools'
// reports); nullptr for another backend's communicator.
const char* mpi_transfer_mode(const Communicator& comm);

}  // namespace seqpar
