// reduce_in_order_kernel: the threads backend's device reduction (threads_reduce_launch.hpp).
// One thread per element, grid-stride; each element combines the inputs in their (rank) order:
// fp32, fp64, i32 and i64 in their own type, bf16 and fp16 accumulated in fp32 and rounded to
// nearest even once at the end. That is comm/host_reduce.cpp's rule, written the same way, so
// every rank gets the same bits, and the same as the host backend's.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "comm/threads/threads_reduce_launch.hpp"
#include "core/cuda_device.cuh"

namespace seqpar::threads_device {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 4096;  // the grid-stride loop covers the rest

template <class T>
__device__ __forceinline__ T combine(T a, T b, bool take_max) {
  if (take_max) return b > a ? b : a;
  return static_cast<T>(a + b);
}

__device__ __forceinline__ float load_as_float(const void* data, DType dtype, int64_t i) {
  if (dtype == DType::kBF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i]);
  return __half2float(static_cast<const __half*>(data)[i]);
}

__device__ __forceinline__ void store_from_float(void* data, DType dtype, int64_t i, float value) {
  if (dtype == DType::kBF16) {
    static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(value);
  } else {
    static_cast<__half*>(data)[i] = __float2half_rn(value);
  }
}

// Element e of the range, in the inputs' own type T.
template <class T>
__device__ __forceinline__ void reduce_native(const ReduceInOrder& p, int64_t e) {
  const int64_t i = p.first + e;
  T acc = static_cast<const T*>(p.inputs[0])[i];
  for (int k = 1; k < p.input_count; ++k) {
    acc = combine(acc, static_cast<const T*>(p.inputs[k])[i], p.take_max);
  }
  static_cast<T*>(p.dst)[e] = acc;
}

// Element e of the range, 16-bit inputs accumulated in fp32.
__device__ __forceinline__ void reduce_through_float(const ReduceInOrder& p, int64_t e) {
  const int64_t i = p.first + e;
  float acc = load_as_float(p.inputs[0], p.dtype, i);
  for (int k = 1; k < p.input_count; ++k) {
    acc = combine(acc, load_as_float(p.inputs[k], p.dtype, i), p.take_max);
  }
  store_from_float(p.dst, p.dtype, e, acc);
}

__global__ void __launch_bounds__(kThreads)
    reduce_in_order_kernel(const __grid_constant__ ReduceInOrder p) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < p.count;
       e += step) {
    switch (p.dtype) {
      case DType::kF32:
        reduce_native<float>(p, e);
        break;
      case DType::kF64:
        reduce_native<double>(p, e);
        break;
      case DType::kI32:
        reduce_native<int32_t>(p, e);
        break;
      case DType::kI64:
        reduce_native<int64_t>(p, e);
        break;
      case DType::kBF16:
      case DType::kF16:
        reduce_through_float(p, e);
        break;
    }
  }
}

}  // namespace

cudaError_t launch_reduce_in_order(const ReduceInOrder& p, cudaStream_t stream) {
  if (p.count <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((p.count + kThreads - 1) / kThreads, kMaxBlocks);
  return cuda_device::launch_kernel(reduce_in_order_kernel, dim3(static_cast<unsigned>(blocks)),
                                    kThreads, 0, stream, p);
}

}  // namespace seqpar::threads_device
