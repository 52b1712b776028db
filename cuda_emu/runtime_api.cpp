// The CUDA runtime functions seqpar calls, over the emulated GPU (cuda_emu/device.hpp): linked
// instead of libcudart in the emulated build. Anything else of the runtime is absent, so a new
// call fails to link here rather than running unemulated.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_emu/cta.hpp"
#include "cuda_emu/device.hpp"

namespace dev = seqpar::cuda_emu::device;

extern "C" {

// ---- memory ----

cudaError_t cudaMalloc(void** p, size_t bytes) { return dev::malloc(p, bytes); }
cudaError_t cudaFree(void* p) { return dev::free(p); }

// Page-locked host memory is ordinary host memory here.
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (p == nullptr) return cudaErrorInvalidValue;
  *p = bytes == 0 ? nullptr : std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return bytes == 0 || *p != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  return dev::memory_info(free_bytes, total_bytes);
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  if (attributes == nullptr) return cudaErrorInvalidValue;
  std::memset(attributes, 0, sizeof(*attributes));
  const bool on_device = dev::is_device_pointer(ptr);
  attributes->type = on_device ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
  attributes->device = 0;
  attributes->devicePointer = on_device ? const_cast<void*>(ptr) : nullptr;
  attributes->hostPointer = on_device ? nullptr : const_cast<void*>(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  const seqpar::cuda_emu::EmulatedRuntimeCall runtime;
  return dev::memcpy_async(dst, src, count, kind, stream);
}

// Synchronous copies and fills run on the legacy stream and wait for it.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  const cudaError_t err = dev::memcpy_async(dst, src, count, kind, nullptr);
  return err != cudaSuccess ? err : dev::stream_synchronize(nullptr);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t count, cudaStream_t stream) {
  const seqpar::cuda_emu::EmulatedRuntimeCall runtime;
  return dev::memset_async(p, value, count, stream);
}

cudaError_t cudaMemset(void* p, int value, size_t count) {
  const cudaError_t err = dev::memset_async(p, value, count, nullptr);
  return err != cudaSuccess ? err : dev::stream_synchronize(nullptr);
}

// ---- the device ----

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return cudaErrorInvalidValue;
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return cudaErrorInvalidValue;
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

// An sm_90 device of H100/H200 limits; the name says what it is.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return cudaErrorInvalidValue;
  if (device != 0) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "seqpar CUDA emulator (sm_90, on the CPU)");
  dev::memory_info(nullptr, &prop->totalGlobalMem);
  prop->sharedMemPerBlock = seqpar::cuda_emu::kDefaultDynamicSmem;
  prop->sharedMemPerBlockOptin = seqpar::cuda_emu::kMaxDynamicSmem;
  prop->sharedMemPerMultiprocessor = 233472;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = seqpar::cuda_emu::kMaxThreadsPerBlock;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->maxBlocksPerMultiProcessor = 32;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->concurrentKernels = 1;
  prop->asyncEngineCount = 1;
  prop->unifiedAddressing = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return cudaErrorInvalidValue;
  if (device != 0) return cudaErrorInvalidDevice;
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount:
      *value = prop.multiProcessorCount;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
      *value = prop.major;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = prop.minor;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(prop.sharedMemPerBlockOptin);
      return cudaSuccess;
    case cudaDevAttrWarpSize:
      *value = prop.warpSize;
      return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = prop.maxThreadsPerBlock;
      return cudaSuccess;
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t cudaDeviceSynchronize(void) { return dev::device_synchronize(); }

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return dev::set_max_dynamic_smem(func, value);
}

// ---- streams and events ----

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return dev::stream_create(stream, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  return dev::stream_create(stream, flags);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) { return dev::stream_destroy(stream); }
cudaError_t cudaStreamSynchronize(cudaStream_t stream) { return dev::stream_synchronize(stream); }
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  if (flags != 0) return cudaErrorInvalidValue;
  const seqpar::cuda_emu::EmulatedRuntimeCall runtime;
  return dev::stream_wait_event(stream, event);
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return dev::event_create(event, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  return dev::event_create(event, flags);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) { return dev::event_destroy(event); }
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  const seqpar::cuda_emu::EmulatedRuntimeCall runtime;
  return dev::event_record(event, stream);
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) { return dev::event_synchronize(event); }
cudaError_t cudaEventQuery(cudaEvent_t event) { return dev::event_query(event); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  return dev::event_elapsed_ms(ms, start, end);
}

// ---- errors ----

cudaError_t cudaGetLastError(void) { return dev::take_last_error(); }
cudaError_t cudaPeekAtLastError(void) { return dev::peek_last_error(); }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidMemcpyDirection:
      return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    default:
      return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidMemcpyDirection:
      return "invalid copy direction for memcpy";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure (the CUDA emulator found a fault: see its report above)";
    default:
      return "unknown error";
  }
}

}  // extern "C"
