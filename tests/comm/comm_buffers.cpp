// CommBuffers (comm_buffers.hpp): device copies of a check's host vectors, in CUDA builds.
#include "comm_buffers.hpp"

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.hpp"
#endif

namespace seqpar::testing {

CommBuffers::CommBuffers(const Communicator& comm) : comm_(comm) {}

#ifdef SEQPAR_HAVE_CUDA
namespace {

cudaStream_t stream_of(const Communicator& comm) {
  return static_cast<cudaStream_t>(comm.stream());
}

}  // namespace

CommBuffers::~CommBuffers() {
  for (const Mirror& mirror : mirrors_) cudaFree(mirror.device);
}

void* CommBuffers::place_bytes(void* host, size_t bytes) {
  if (!comm_.device_memory()) return host;
  if (bytes == 0) return nullptr;
  void* device = nullptr;
  const cudaError_t allocated = cudaMalloc(&device, bytes);
  if (allocated != cudaSuccess) {
    if (status_.is_ok()) {
      status_ = SEQPAR_FAIL(StatusCode::kCudaError, "cudaMalloc of ", bytes,
                            " bytes: ", cudaGetErrorString(allocated));
    }
    return nullptr;
  }
  mirrors_.push_back({host, device, bytes});
  const cudaError_t uploaded =
      cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_of(comm_));
  if (uploaded != cudaSuccess && status_.is_ok()) {
    status_ = SEQPAR_FAIL(StatusCode::kCudaError, "upload: ", cudaGetErrorString(uploaded));
  }
  return device;
}

Status CommBuffers::push() {
  for (const Mirror& m : mirrors_) {
    SEQPAR_CUDA_CHECK(
        cudaMemcpyAsync(m.device, m.host, m.bytes, cudaMemcpyHostToDevice, stream_of(comm_)));
  }
  return Status::ok();
}

Status CommBuffers::fetch() {
  if (mirrors_.empty()) return Status::ok();
  for (const Mirror& m : mirrors_) {
    SEQPAR_CUDA_CHECK(
        cudaMemcpyAsync(m.host, m.device, m.bytes, cudaMemcpyDeviceToHost, stream_of(comm_)));
  }
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(stream_of(comm_)));
  return Status::ok();
}

#else  // no CUDA: only host memory

CommBuffers::~CommBuffers() = default;

void* CommBuffers::place_bytes(void* host, size_t) {
  if (comm_.device_memory() && status_.is_ok()) {
    status_ = SEQPAR_FAIL(StatusCode::kUnsupported,
                          "a device-memory communicator in a build without CUDA");
  }
  return host;
}

Status CommBuffers::push() { return Status::ok(); }
Status CommBuffers::fetch() { return Status::ok(); }

#endif

}  // namespace seqpar::testing
