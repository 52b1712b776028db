#pragma once
// Warp-level building blocks of the CUDA attention kernels (sm_80 instructions, valid on sm_90):
// cp.async 16-byte copies into padded shared-memory tiles, ldmatrix fragment loads,
// mma.sync.m16n8k16 (bf16/fp16 in, fp32 accumulate), fp32 -> 16-bit fragment packing, quad
// reductions and the position-map helpers, over the PTX wrappers of core/cuda_device.cuh.
// Device code: included by the .cu files only.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * g + t, g in [0, 8), t in [0, 4)):
//   A (16 x 16, row-major) a0: (g, 2t..2t+1)  a1: (g+8, 2t..)  a2: (g, 2t+8..)  a3: (g+8, 2t+8..)
//   B (16 x 8, "col")      b0: (k = 2t..2t+1, n = g)           b1: (k = 2t+8..2t+9, n = g)
//   C (16 x 8, fp32)       c0, c1: (g, 2t..2t+1)               c2, c3: (g+8, 2t..2t+1)
// An accumulator tile of 16 rows x 16 columns (two C tiles) is, once packed to 16 bits, exactly
// the A fragment of the next product: P = softmax(S) feeds P V without leaving registers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "attention/block_params.hpp"
#include "core/cuda_device.cuh"

namespace seqpar::cuda_attention {

inline constexpr int kWarpSize = 32;
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// Shared-memory tiles are (rows, D) 16-bit elements with rows padded by 8 elements (16 bytes):
// the 8 row addresses of one ldmatrix then fall in 8 different 16-byte bank groups.
template <int kD>
inline constexpr int kSmemStride = kD + 8;

// ---- the PTX wrappers (core/cuda_device.cuh: real PTX, or the emulator) ----

using cuda_device::cp_async_16;
using cuda_device::cp_async_commit;
using cuda_device::cp_async_wait;
using cuda_device::ldmatrix_x4;
using cuda_device::ldmatrix_x4_trans;

// Copies rows [0, kRows) of a (rows, kD) tile whose row r starts at gmem + r * row_stride
// (elements) into a padded shared tile; rows >= valid_rows are zero-filled. All kThreads threads
// of the block call it (each copies some 16-byte chunks) and then commit.
template <int kRows, int kD, int kThreads, class T>
__device__ __forceinline__ void load_tile_async(T* smem, const T* gmem, int64_t row_stride,
                                                int valid_rows, int tid) {
  constexpr int kChunksPerRow = kD * static_cast<int>(sizeof(T)) / 16;
  constexpr int kElemsPerChunk = 16 / static_cast<int>(sizeof(T));
  constexpr int kChunks = kRows * kChunksPerRow;
#pragma unroll
  for (int c = tid; c < kChunks; c += kThreads) {
    const int r = c / kChunksPerRow;
    const int col = (c % kChunksPerRow) * kElemsPerChunk;
    const bool valid = r < valid_rows;
    const T* src = valid ? gmem + r * row_stride + col : gmem;
    cp_async_16(smem + r * kSmemStride<kD> + col, src, valid);
  }
}

// The three ways the kernels read a padded (rows, kD) shared tile X (row-major, rows = tokens):
//
// A fragment of X itself (16 rows from row0, 16 columns from col0): the tile is the left operand.
template <int kD, class T>
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const T* tile, int row0, int col0,
                                                int lane) {
  const int row = row0 + (lane & 15);
  const int col = col0 + (lane >> 4) * 8;
  ldmatrix_x4(a, tile + row * kSmemStride<kD> + col);
}
// B fragments of X^T for two n-tiles (rows row0..row0+7 and row0+8..row0+15 of X are the n
// columns; columns col0..col0+15 of X the k index): S = A X^T with X = K, say.
// b[0], b[1]: n-tile of rows row0..+7; b[2], b[3]: n-tile of rows row0+8..+15.
template <int kD, class T>
__device__ __forceinline__ void load_bt_fragments(uint32_t (&b)[4], const T* tile, int row0,
                                                  int col0, int lane) {
  const int row = row0 + (lane & 7) + ((lane >> 4) << 3);
  const int col = col0 + ((lane >> 3) & 1) * 8;
  ldmatrix_x4(b, tile + row * kSmemStride<kD> + col);
}
// B fragments of X for two n-tiles (rows row0..row0+15 of X are the k index; columns
// col0..col0+7 and col0+8..col0+15 the n columns): O = P X with X = V, say.
// b[0], b[1]: n-tile of columns col0..+7; b[2], b[3]: n-tile of columns col0+8..+15.
template <int kD, class T>
__device__ __forceinline__ void load_b_fragments(uint32_t (&b)[4], const T* tile, int row0,
                                                 int col0, int lane) {
  const int row = row0 + (lane & 7) + ((lane >> 3) & 1) * 8;
  const int col = col0 + (lane >> 4) * 8;
  ldmatrix_x4_trans(b, tile + row * kSmemStride<kD> + col);
}

// ---- mma.sync m16n8k16, fp32 accumulate: c += a b ----

template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1);

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4],
                                                         uint32_t b0, uint32_t b1) {
  cuda_device::mma_16816_bf16(c, a, b0, b1);
}

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], const uint32_t (&a)[4],
                                                  uint32_t b0, uint32_t b1) {
  cuda_device::mma_16816_f16(c, a, b0, b1);
}

// ---- fp32 <-> 16-bit ----

// Two floats as one 16-bit pair (round to nearest even); lo in the low half (lower column).
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &v, sizeof(bits));
  return bits;
}

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &v, sizeof(bits));
  return bits;
}

// A fragment (16 rows x 16 columns) from the accumulators of two consecutive n-tiles.
template <class T>
__device__ __forceinline__ void pack_a_fragment(uint32_t (&a)[4], const float (&left)[4],
                                                const float (&right)[4]) {
  a[0] = pack2<T>(left[0], left[1]);
  a[1] = pack2<T>(left[2], left[3]);
  a[2] = pack2<T>(right[0], right[1]);
  a[3] = pack2<T>(right[2], right[3]);
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// ---- reductions over the 4 lanes that share an accumulator row ----

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- positions (the same rule as the CPU kernels: attention/block_params.hpp) ----

__device__ __forceinline__ int64_t position_at(const PositionMap& map, int64_t i) {
  return map.index != nullptr ? map.index[i] : map.offset + map.stride * i;
}

// position_range() of rows [begin, end) (end > begin), computed by a whole warp; every lane
// gets the same result. Index maps read the positions (one per lane per pass).
__device__ __forceinline__ PositionRange warp_position_range(const PositionMap& map, int64_t begin,
                                                             int64_t end, int lane) {
  if (map.index == nullptr) {
    const int64_t first = map.offset + map.stride * begin;
    const int64_t last = map.offset + map.stride * (end - 1);
    return first <= last ? PositionRange{first, last} : PositionRange{last, first};
  }
  int64_t lo = INT64_MAX;
  int64_t hi = INT64_MIN;
  for (int64_t i = begin + lane; i < end; i += kWarpSize) {
    const int64_t p = map.index[i];
    lo = p < lo ? p : lo;
    hi = p > hi ? p : hi;
  }
#pragma unroll
  for (int m = 1; m < kWarpSize; m <<= 1) {
    const int64_t olo = __shfl_xor_sync(0xffffffffu, lo, m);
    const int64_t ohi = __shfl_xor_sync(0xffffffffu, hi, m);
    lo = olo < lo ? olo : lo;
    hi = ohi > hi ? ohi : hi;
  }
  return {lo, hi};
}

// Tile-level work test of a (rows of q) x (rows of k) tile pair, warp-uniform.
struct TileWork {
  bool any = false;   // some pair is kept: the tile is computed
  bool full = false;  // every pair is kept: no per-element mask
};

__device__ __forceinline__ TileWork tile_work(MaskKind mask, PositionRange q, PositionRange k) {
  return {block_may_have_work(mask, q, k), block_fully_kept(mask, q, k)};
}

// ---- host side: the one dtype x head-dim dispatch and launch of the tensor-core kernels ----

// Calls launch.template operator()<T, kD>() for bf16 / fp16 storage and head dims 64 / 128 (the
// instances the kernels are built for); cudaErrorInvalidValue for anything else (the launchers in
// cuda_launchers.cpp refuse those first, with a message).
template <class Launch>
cudaError_t dispatch_dtype_head_dim(DType dtype, int64_t head_dim, Launch&& launch) {
  const bool bf16 = dtype == DType::kBF16;
  if (!bf16 && dtype != DType::kF16) return cudaErrorInvalidValue;
  switch (head_dim) {
    case 64:
      return bf16 ? launch.template operator()<__nv_bfloat16, 64>()
                  : launch.template operator()<__half, 64>();
    case 128:
      return bf16 ? launch.template operator()<__nv_bfloat16, 128>()
                  : launch.template operator()<__half, 128>();
    default:
      return cudaErrorInvalidValue;
  }
}

// Launches `kernel(params)` on a (ceil(rows / block_rows), heads, batch) grid with `threads`
// threads and `smem_bytes` of dynamic shared memory (raised above the 48 KiB default first).
template <class Params>
cudaError_t launch_tiled(void (*kernel)(Params), const Params& params, int64_t rows, int block_rows,
                         int64_t heads, int64_t batch, int threads, int smem_bytes,
                         cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((rows + block_rows - 1) / block_rows),
                  static_cast<unsigned>(heads), static_cast<unsigned>(batch));
  return cuda_device::launch_kernel(kernel, grid, threads, smem_bytes, stream, params);
}

}  // namespace seqpar::cuda_attention
