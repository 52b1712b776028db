// DeviceBuffer, CudaStream and CudaEvent (CUDA builds only).
#include "core/device_buffer.hpp"

#include <algorithm>

#ifdef SEQPAR_HAVE_CUDA
#include <utility>

#include "core/cuda_check.hpp"

namespace seqpar {

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Status DeviceBuffer::allocate(size_t bytes) {
  release();
  if (bytes == 0) return Status::ok();
  cudaError_t err = cudaMalloc(&data_, bytes);
  if (err == cudaErrorMemoryAllocation) {
    data_ = nullptr;
    return SEQPAR_FAIL(StatusCode::kOutOfMemory, "device allocation of ", bytes, " bytes failed");
  }
  SEQPAR_CUDA_CHECK(err);
  bytes_ = bytes;
  return Status::ok();
}

void DeviceBuffer::release() {
  if (data_ != nullptr) cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
}

CudaStream::~CudaStream() {
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

PinnedHostBuffer::~PinnedHostBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);
}

Status PinnedHostBuffer::reserve(size_t bytes) {
  if (bytes <= capacity_) return Status::ok();
  const size_t grown = std::max(bytes, capacity_ + capacity_ / 2);
  if (data_ != nullptr) cudaFreeHost(data_);
  data_ = nullptr;
  capacity_ = 0;
  void* made = nullptr;
  SEQPAR_CUDA_CHECK(cudaMallocHost(&made, grown));
  data_ = static_cast<char*>(made);
  capacity_ = grown;
  return Status::ok();
}

Status CudaStream::create() {
  SEQPAR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  return Status::ok();
}

CudaEvent::~CudaEvent() {
  if (event_ != nullptr) cudaEventDestroy(event_);
}

Status CudaEvent::create(bool timing) {
  SEQPAR_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? 0u : cudaEventDisableTiming));
  return Status::ok();
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

}  // namespace seqpar
#endif
