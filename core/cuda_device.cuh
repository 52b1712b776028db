#pragma once
// The one place where seqpar's CUDA kernels touch the hardware: the PTX they use (cp.async,
// ldmatrix, mma.sync m16n8k16), their dynamic shared memory, and their launch. The real build
// (nvcc) emits the PTX and launches with <<<>>>; the emulated build (SEQPAR_CUDA_EMULATION,
// compiled as C++ by the host compiler) calls the emulator in cuda_emu/ instead, which runs
// each CTA's threads as fibers on the CPU and checks what the hardware would not. Every kernel
// body is the same text in both builds. Included by .cu files only.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#ifdef SEQPAR_CUDA_EMULATION
#include "cuda_emu/kernel_api.hpp"
#endif

// The kernel's dynamic shared memory as `T* name` (16-byte aligned).
#ifdef SEQPAR_CUDA_EMULATION
#define SEQPAR_DYNAMIC_SMEM(T, name) \
  T* const name = reinterpret_cast<T*>(::seqpar::cuda_emu::dynamic_smem())
#else
#define SEQPAR_DYNAMIC_SMEM(T, name)                          \
  extern __shared__ __align__(16) unsigned char name##_raw[]; \
  T* const name = reinterpret_cast<T*>(name##_raw)
#endif

namespace seqpar {

#ifdef SEQPAR_CUDA_EMULATION
// The device's exp2f (found before ::exp2f by kernels in namespaces below seqpar).
inline float exp2f(float x) { return cuda_emu::exp2f_device(x); }
#endif

namespace cuda_device {

// ---- cp.async: 16 bytes global -> shared; when !valid the 16 bytes are zero-filled ----

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::cp_async_16(smem, gmem, valid);
#else
  const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(src_bytes)
               : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::cp_async_wait(kPending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// ---- ldmatrix.x4: four 8 x 8 b16 matrices, lanes 8i..8i+7 giving matrix i's row addresses ----

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::ldmatrix_x4(r, smem, false);
#else
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::ldmatrix_x4(r, smem, true);
#else
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

// ---- mma.sync m16n8k16, 16-bit inputs, fp32 accumulate: c += a b ----

__device__ __forceinline__ void mma_16816_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::mma_m16n8k16(c, a, b0, b1, true);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ void mma_16816_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                              uint32_t b1) {
#ifdef SEQPAR_CUDA_EMULATION
  cuda_emu::mma_m16n8k16(c, a, b0, b1, false);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// ---- launch ----

// Launches kernel(params) on `grid` x `threads` with `smem_bytes` of dynamic shared memory on
// `stream` (raising the kernel's dynamic shared-memory limit first when it is above the 48 KiB
// default); the launch's error.
template <class Params>
cudaError_t launch_kernel(void (*kernel)(Params), dim3 grid, int threads, int smem_bytes,
                          cudaStream_t stream, const Params& params) {
  if (smem_bytes > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (err != cudaSuccess) return err;
  }
#ifdef SEQPAR_CUDA_EMULATION
  return cuda_emu::launch(reinterpret_cast<const void*>(kernel), grid,
                          dim3(static_cast<unsigned>(threads)), static_cast<size_t>(smem_bytes),
                          stream, [kernel, params] { kernel(params); });
#else
  // clang-format off
  kernel<<<grid, threads, smem_bytes, stream>>>(params);
  // clang-format on
  return cudaGetLastError();
#endif
}

}  // namespace cuda_device
}  // namespace seqpar
