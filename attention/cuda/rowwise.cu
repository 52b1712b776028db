// attention_delta_kernel and merge_partials_kernel: the two row-wise ops of the block contract,
// one warp per (b, i, h) row of D values, lanes striding over D (any head dim).
//   delta (B, H, S) = rowsum(out * dout), out and dout (B, S, H, D) in the storage dtype,
//     summed in fp32 (the backward preprocess);
//   (out, lse) <- merge(out, lse; out2, lse2), all fp32: the max-shifted form of
//     cpu_tiles::merge_row, exact when either side is fully masked (lse -inf).
#include <cmath>

#include "attention/cuda/kernel_params.hpp"
#include "attention/cuda/mma_tiles.cuh"

namespace seqpar::cuda_attention {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each
constexpr int kRowThreads = kRowsPerBlock * kWarpSize;

struct RowIndex {
  int64_t row;   // (b * S + i) * H + h: the row's D values start at row * D
  int64_t stat;  // (b * H + h) * S + i
};

// This warp's row, or row = -1 past the end (the whole warp returns together).
__device__ __forceinline__ RowIndex warp_row(const RowwiseKernelParams& p) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= p.batch * p.seq * p.heads) return {-1, -1};
  const int64_t h = row % p.heads;
  const int64_t i = (row / p.heads) % p.seq;
  const int64_t b = row / (p.heads * p.seq);
  return {row, (b * p.heads + h) * p.seq + i};
}

template <class T>
__global__ void __launch_bounds__(kRowThreads)
    attention_delta_kernel(const __grid_constant__ RowwiseKernelParams p) {
  const RowIndex r = warp_row(p);
  if (r.row < 0) return;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const T* out = static_cast<const T*>(p.out) + r.row * p.head_dim;
  const T* dout = static_cast<const T*>(p.dout) + r.row * p.head_dim;
  float sum = 0.0f;
  for (int64_t e = lane; e < p.head_dim; e += kWarpSize)
    sum += to_float(out[e]) * to_float(dout[e]);
#pragma unroll
  for (int m = kWarpSize / 2; m > 0; m /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, m);
  if (lane == 0) p.delta[r.stat] = sum;
}

__global__ void __launch_bounds__(kRowThreads)
    merge_partials_kernel(const __grid_constant__ RowwiseKernelParams p) {
  const RowIndex r = warp_row(p);
  if (r.row < 0) return;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  float* out = p.merge_out + r.row * p.head_dim;
  const float* out2 = p.merge_out2 + r.row * p.head_dim;
  const float lse1 = p.merge_lse[r.stat];
  const float lse2 = p.merge_lse2[r.stat];
  __syncwarp();                   // every lane has read lse1 before lane 0 overwrites it
  if (lse2 == -INFINITY) return;  // merging a fully masked partial changes nothing
  if (lse1 == -INFINITY) {
    for (int64_t e = lane; e < p.head_dim; e += kWarpSize) out[e] = out2[e];
    if (lane == 0) p.merge_lse[r.stat] = lse2;
    return;
  }
  const float m = fmaxf(lse1, lse2);
  const float w1 = expf(lse1 - m);
  const float w2 = expf(lse2 - m);
  const float sum = w1 + w2;
  const float c1 = w1 / sum;
  const float c2 = w2 / sum;
  for (int64_t e = lane; e < p.head_dim; e += kWarpSize) out[e] = c1 * out[e] + c2 * out2[e];
  if (lane == 0) p.merge_lse[r.stat] = m + logf(sum);
}

dim3 row_grid(const RowwiseKernelParams& p) {
  const int64_t rows = p.batch * p.seq * p.heads;
  return dim3(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock));
}

}  // namespace

cudaError_t launch_attention_delta(const RowwiseKernelParams& p, cudaStream_t stream) {
  switch (p.dtype) {
    case DType::kF32:
      return cuda_device::launch_kernel(attention_delta_kernel<float>, row_grid(p), kRowThreads, 0,
                                        stream, p);
    case DType::kBF16:
      return cuda_device::launch_kernel(attention_delta_kernel<__nv_bfloat16>, row_grid(p),
                                        kRowThreads, 0, stream, p);
    case DType::kF16:
      return cuda_device::launch_kernel(attention_delta_kernel<__half>, row_grid(p), kRowThreads, 0,
                                        stream, p);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_merge_partials(const RowwiseKernelParams& p, cudaStream_t stream) {
  return cuda_device::launch_kernel(merge_partials_kernel, row_grid(p), kRowThreads, 0, stream, p);
}

}  // namespace seqpar::cuda_attention
