#pragma once
// What a kernel translation unit sees in the emulated build (SEQPAR_CUDA_EMULATION): the CUDA
// execution-space keywords as plain C++, the built-in indices, barriers and warp shuffles, and
// the emulated instructions core/cuda_device.cuh's wrappers call. A .cu file is compiled as C++
// with this header in front (through core/cuda_device.cuh); its kernel bodies are the real
// build's, unchanged.
//
// Each CUDA thread of a CTA is a fiber on the emulator's device thread (cuda_emu/cta.hpp), so
// every function below acts for "the current CUDA thread". Only the device thread runs kernel
// code; the host threads only enqueue work (cuda_emu/device.hpp).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <utility>

#include "cuda_emu/device.hpp"

// Execution spaces and qualifiers: plain C++ here. The CUDA headers define some of them for host
// compilers; every kernel-side use must mean "an ordinary function" in this build.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __grid_constant__
#define __grid_constant__

namespace seqpar::cuda_emu {

// The current CUDA thread's built-in variables.
struct ThreadIndex {
  uint3 thread_idx{0, 0, 0};
  uint3 block_idx{0, 0, 0};
  dim3 block_dim{1, 1, 1};
  dim3 grid_dim{1, 1, 1};
};
const ThreadIndex& this_thread();

// __syncthreads(): every thread of the CTA that has not exited, from the same call site.
void sync_threads(const char* file, int line);
// __syncwarp(mask): the lanes in `mask`, which must all be alive.
void sync_warp(unsigned mask, const char* file, int line);
// __shfl_xor_sync on up to 64 bits: the value of lane (lane ^ lane_mask) within `width` lanes.
uint64_t shfl_xor_bits(unsigned mask, uint64_t bits, int lane_mask, int width);

// cp.async.cg.shared.global 16 bytes (src_bytes 16 when valid, else 0: zero fill), and its
// commit_group / wait_group. The destination reads as poison until the group is waited on.
void cp_async_16(void* smem, const void* gmem, bool valid);
void cp_async_commit();
void cp_async_wait(int pending);
// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16.
void ldmatrix_x4(uint32_t (&r)[4], const void* smem, bool trans);
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32, c += a b.
void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, bool bf16);

// atomicAdd / atomicMin on a naturally aligned 4- or 8-byte unsigned word of device memory or of
// the dynamic shared memory: one read-modify-write, returning the old value. No lock: only the
// device thread runs kernels, one CTA at a time, and a CTA's threads (fibers) switch only at the
// waits above, so no other thread's access can fall between the read and the write, as none can
// on the hardware. An address elsewhere, or misaligned, fails the launch.
enum class AtomicOp : uint8_t { kAdd, kMin };
uint64_t atomic_rmw(void* address, size_t bytes, AtomicOp op, uint64_t value);

// The CTA's dynamic shared memory (the launch's smem bytes, poisoned at the CTA's start).
unsigned char* dynamic_smem();

// exp2f as the CUDA math library documents it on the device: within 2 ulp of 2^x, subnormal
// results flushed to zero (ex2.approx.ftz).
float exp2f_device(float x);

// Enqueues `grid` x `block` threads of `thread_body` on `stream` with `smem_bytes` of dynamic
// shared memory. `kernel` identifies the function (cudaFuncSetAttribute's key).
cudaError_t launch_closure(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                           cudaStream_t stream, std::function<void()> thread_body);

// The same for a callable, its closure made inside the emulated runtime (cuda_emu/device.hpp's
// EmulatedRuntimeCall: a real launch allocates nothing the caller sees).
template <class Body>
cudaError_t launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, Body&& body);

}  // namespace seqpar::cuda_emu

template <class Body>
cudaError_t seqpar::cuda_emu::launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                                     cudaStream_t stream, Body&& body) {
  const EmulatedRuntimeCall runtime;
  return launch_closure(kernel, grid, block, smem_bytes, stream,
                        std::function<void()>(std::forward<Body>(body)));
}

// ---- the CUDA built-ins kernels use ----
#define threadIdx (::seqpar::cuda_emu::this_thread().thread_idx)
#define blockIdx (::seqpar::cuda_emu::this_thread().block_idx)
#define blockDim (::seqpar::cuda_emu::this_thread().block_dim)
#define gridDim (::seqpar::cuda_emu::this_thread().grid_dim)
#define __syncthreads() ::seqpar::cuda_emu::sync_threads(__FILE__, __LINE__)
#define __syncwarp(...) \
  ::seqpar::cuda_emu::sync_warp(::seqpar::cuda_emu::warp_mask(__VA_ARGS__), __FILE__, __LINE__)

namespace seqpar::cuda_emu {
constexpr unsigned warp_mask() { return 0xffffffffu; }
constexpr unsigned warp_mask(unsigned mask) { return mask; }
}  // namespace seqpar::cuda_emu

template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= 8, "__shfl_xor_sync moves at most 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = ::seqpar::cuda_emu::shfl_xor_bits(mask, bits, lane_mask, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// CUDA's atomicAdd and atomicMin on unsigned 32- and 64-bit words (the forms seqpar's kernels
// use; add others here as kernels need them).
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
  return static_cast<unsigned int>(::seqpar::cuda_emu::atomic_rmw(
      address, sizeof(unsigned int), ::seqpar::cuda_emu::AtomicOp::kAdd, value));
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return ::seqpar::cuda_emu::atomic_rmw(address, sizeof(unsigned long long),
                                        ::seqpar::cuda_emu::AtomicOp::kAdd, value);
}
inline unsigned int atomicMin(unsigned int* address, unsigned int value) {
  return static_cast<unsigned int>(::seqpar::cuda_emu::atomic_rmw(
      address, sizeof(unsigned int), ::seqpar::cuda_emu::AtomicOp::kMin, value));
}
inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  return ::seqpar::cuda_emu::atomic_rmw(address, sizeof(unsigned long long),
                                        ::seqpar::cuda_emu::AtomicOp::kMin, value);
}

// Device code calls the overloaded min / max of CUDA's math headers.
using std::max;
using std::min;
