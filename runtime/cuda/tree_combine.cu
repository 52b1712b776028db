// The tree combine's weighing and normalising passes on the device (tree_combine_launch.hpp):
// one thread per element of the (B, S, H, D) rows, grid-stride; the thread of d == 0 also
// writes the row's statistic. The same arithmetic, in the same order, as the host loops of
// TreeCombine::combine.
#include <algorithm>
#include <cmath>

#include "core/cuda_device.cuh"
#include "runtime/cuda/tree_combine_launch.hpp"

namespace seqpar::cuda_tree_combine {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;  // the grid-stride loop covers the rest

// Element e of the (b0.., S, H, D) rows: its (b, s, h) statistic index and row offset.
struct Element {
  int64_t stat;  // (b * H + h) * S + s
  int64_t at;    // ((b * S + s) * H + h) * D + d
  int64_t d;
};

__device__ __forceinline__ Element element(const CombineRows& p, int64_t b0, int64_t e) {
  const int64_t d = e % p.head_dim;
  const int64_t h = (e / p.head_dim) % p.heads;
  const int64_t s = (e / (p.head_dim * p.heads)) % p.seq;
  const int64_t b = b0 + e / (p.head_dim * p.heads * p.seq);
  return {(b * p.heads + h) * p.seq + s, ((b * p.seq + s) * p.heads + h) * p.head_dim + d, d};
}

__global__ void __launch_bounds__(kThreads) weigh_kernel(const __grid_constant__ CombineRows p) {
  const int64_t total = p.batch * p.seq * p.heads * p.head_dim;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += step) {
    const Element x = element(p, 0, e);
    const float lse = p.lse[x.stat];
    const float w = lse == -INFINITY ? 0.0f : expf(lse - p.max[x.stat]);
    p.num[x.at] = p.out[x.at] * w;
    if (x.d == 0) p.den[x.stat] = w;
  }
}

__global__ void __launch_bounds__(kThreads)
    normalise_kernel(const __grid_constant__ CombineRows p) {
  const int64_t total = (p.keep_end - p.keep_begin) * p.seq * p.heads * p.head_dim;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += step) {
    const Element x = element(p, p.keep_begin, e);
    const float den = p.den[x.stat];  // > 0 unless every rank masked the row
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    p.out[x.at] = p.num[x.at] * inv;
    if (x.d == 0) p.lse[x.stat] = den > 0.0f ? p.max[x.stat] + logf(den) : -INFINITY;
  }
}

dim3 grid_for(int64_t elements) {
  return dim3(
      static_cast<unsigned>(std::min<int64_t>((elements + kThreads - 1) / kThreads, kMaxBlocks)));
}

}  // namespace

cudaError_t launch_weigh(const CombineRows& rows, cudaStream_t stream) {
  const int64_t elements = rows.batch * rows.seq * rows.heads * rows.head_dim;
  if (elements <= 0) return cudaSuccess;
  return cuda_device::launch_kernel(weigh_kernel, grid_for(elements), kThreads, 0, stream, rows);
}

cudaError_t launch_normalise(const CombineRows& rows, cudaStream_t stream) {
  const int64_t elements =
      (rows.keep_end - rows.keep_begin) * rows.seq * rows.heads * rows.head_dim;
  if (elements <= 0) return cudaSuccess;
  return cuda_device::launch_kernel(normalise_kernel, grid_for(elements), kThreads, 0, stream,
                                    rows);
}

}  // namespace seqpar::cuda_tree_combine
