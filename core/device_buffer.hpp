#pragma once
// DeviceBuffer (cudaMalloc, move-only), PinnedHostBuffer (cudaMallocHost), CudaStream and
// CudaEvent RAII. CUDA builds only.
// Public headers never include this; it is for runtime code that runs on the device.
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/status.hpp"

namespace seqpar {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  Status allocate(size_t bytes);
  void release();
  void* data() { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory, for copies to and from the device that stay asynchronous. It only
// grows: reserve() keeps what it has when that is enough, else grows by half again at least, so
// sizes that creep up step by step (a decoder's growing messages) pin memory a logarithmic
// number of times. Its copies must be over before it grows or dies (the owner's business).
class PinnedHostBuffer {
 public:
  PinnedHostBuffer() = default;
  ~PinnedHostBuffer();
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;

  Status reserve(size_t bytes);
  char* data() { return data_; }

 private:
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

class CudaStream {
 public:
  CudaStream() = default;
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  Status create();  // non-blocking stream
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaEvent {
 public:
  CudaEvent() = default;
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  Status create(bool timing = false);
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// Number of visible CUDA devices; 0 (not an error) when there is no driver or no device.
int cuda_device_count();

}  // namespace seqpar
#endif
