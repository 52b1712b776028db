// strided_runs_kernel: the CUDA side of runtime/buffer_ops.hpp. One thread per element of
// B x rows runs of `run` elements, grid-stride: same-dtype copies move the element's bits,
// fp32 <-> bf16/fp16 conversions round to nearest even (as core/dtype.hpp does on the host), and
// sums add the source, read as fp32, into an fp32 destination.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "core/cuda_device.cuh"
#include "runtime/cuda/buffer_ops_launch.hpp"

namespace seqpar::cuda_buffer_ops {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;  // the grid-stride loop covers the rest

__device__ __forceinline__ float load_as_float(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i]);
    case DType::kF16:
      return __half2float(static_cast<const __half*>(data)[i]);
    default:
      return static_cast<const float*>(data)[i];
  }
}

__device__ __forceinline__ void store_from_float(void* data, DType dtype, int64_t i, float value) {
  switch (dtype) {
    case DType::kBF16:
      static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(value);
      break;
    case DType::kF16:
      static_cast<__half*>(data)[i] = __float2half_rn(value);
      break;
    default:
      static_cast<float*>(data)[i] = value;
      break;
  }
}

__global__ void __launch_bounds__(kThreads)
    strided_runs_kernel(const __grid_constant__ StridedRuns p) {
  const int64_t total = p.batch * p.rows * p.run;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += step) {
    const int64_t i = e % p.run;
    const int64_t r = (e / p.run) % p.rows;
    const int64_t b = e / (p.run * p.rows);
    const int64_t s = p.src_base + b * p.src_batch_stride + r * p.src_row_stride + i;
    const int64_t d = p.dst_base + b * p.dst_batch_stride + r * p.dst_row_stride + i;
    if (p.add) {
      static_cast<float*>(p.dst)[d] += load_as_float(p.src, p.src_dtype, s);
    } else if (p.src_dtype == p.dst_dtype && p.src_dtype != DType::kF32) {
      static_cast<uint16_t*>(p.dst)[d] = static_cast<const uint16_t*>(p.src)[s];  // 16-bit bits
    } else {
      store_from_float(p.dst, p.dst_dtype, d, load_as_float(p.src, p.src_dtype, s));
    }
  }
}

}  // namespace

cudaError_t launch_strided_runs(const StridedRuns& p, cudaStream_t stream) {
  const int64_t total = p.batch * p.rows * p.run;
  if (total <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, kMaxBlocks);
  return cuda_device::launch_kernel(strided_runs_kernel, dim3(static_cast<unsigned>(blocks)),
                                    kThreads, 0, stream, p);
}

}  // namespace seqpar::cuda_buffer_ops
