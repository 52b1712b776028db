// The finite check's kernels (finite_check_launch.hpp). The count: one thread per element,
// grid-stride; each thread keeps its own (count, first), the block reduces them (a butterfly in
// each warp, then warp 0 over the warps' results in shared memory) and its thread 0 adds them
// into the record with one atomicAdd and one atomicMin, so the atomics are per block, not per
// element. The latch: one thread.
#include <algorithm>

#include "core/cuda_device.cuh"
#include "runtime/cuda/finite_check_launch.hpp"

namespace seqpar::cuda_finite_check {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 4096;  // the grid-stride loop covers the rest
constexpr unsigned long long kNone = ~0ull;
constexpr unsigned kFullMask = 0xffffffffu;

// NaN or Inf: the exponent bits all ones. Tested on the bits, not with isfinite, so that no
// fast-math option can fold the test away.
__device__ __forceinline__ bool non_finite(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kBF16:
      return (static_cast<const uint16_t*>(data)[i] & 0x7f80u) == 0x7f80u;
    case DType::kF16:
      return (static_cast<const uint16_t*>(data)[i] & 0x7c00u) == 0x7c00u;
    default:
      return (static_cast<const uint32_t*>(data)[i] & 0x7f800000u) == 0x7f800000u;
  }
}

struct Partial {
  unsigned long long count;
  unsigned long long first;
};

__device__ __forceinline__ Partial warp_reduce(Partial p) {
  for (int m = 16; m > 0; m /= 2) {
    p.count += __shfl_xor_sync(kFullMask, p.count, m);
    p.first = min(p.first, __shfl_xor_sync(kFullMask, p.first, m));
  }
  return p;
}

__global__ void __launch_bounds__(kThreads) count_kernel(const __grid_constant__ CountArgs a) {
  SEQPAR_DYNAMIC_SMEM(Partial, warps);  // [kWarps]
  Partial mine{0, kNone};
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n;
       i += step) {
    if (non_finite(a.data, a.dtype, i)) {
      // A thread's indices rise, so its first is the first it finds.
      if (mine.count == 0) mine.first = static_cast<unsigned long long>(i);
      ++mine.count;
    }
  }
  mine = warp_reduce(mine);
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (lane == 0) warps[warp] = mine;
  __syncthreads();
  if (warp != 0) return;
  Partial block = lane < kWarps ? warps[lane] : Partial{0, kNone};
  block = warp_reduce(block);
  if (lane == 0 && block.count > 0) {
    atomicAdd(a.count, block.count);
    atomicMin(a.first, block.first);
  }
}

__global__ void latch_kernel(const __grid_constant__ LatchArgs a) {
  if (a.report->step != 0) return;  // an earlier step's failure stays
  bool found = false;
  for (int t = 0; t < a.checked; ++t) found = found || a.records->count[t] > 0;
  if (!found) return;
  a.report->records = *a.records;
  a.report->pass = a.pass;
  a.report->step = a.step;
}

}  // namespace

cudaError_t launch_count_non_finite(const CountArgs& args, cudaStream_t stream) {
  if (args.n <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((args.n + kThreads - 1) / kThreads, kMaxBlocks);
  return cuda_device::launch_kernel(count_kernel, dim3(static_cast<unsigned>(blocks)), kThreads,
                                    static_cast<int>(kWarps * sizeof(Partial)), stream, args);
}

cudaError_t launch_latch_first_failure(const LatchArgs& args, cudaStream_t stream) {
  return cuda_device::launch_kernel(latch_kernel, dim3(1), 1, 0, stream, args);
}

}  // namespace seqpar::cuda_finite_check
