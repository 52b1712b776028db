#pragma once
// Rectangle copies between row-major (B, rows, cols, inner) tensors: the packing and unpacking
// of head-sharded schemes. A (B, S, H, D) shard is rows = tokens, cols = heads, inner = D; a
// (B, H, S) statistic (LSE, delta) is rows = heads, cols = tokens, inner = 1. A rectangle is
// rows [row, row + rows) x cols [col, col + cols) of every batch; each of its (batch, row) runs
// of cols * inner elements is contiguous on both sides, so copies are plain runs.
#include <cstdint>

#include "core/dtype.hpp"

namespace seqpar {

struct GridShape {
  int64_t batch = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t inner = 0;
};

// A corner inside a grid: the rectangle's first row and column.
struct GridCorner {
  int64_t row = 0;
  int64_t col = 0;
};

struct ConstGrid {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  GridShape shape;
};

struct MutableGrid {
  void* data = nullptr;
  DType dtype = DType::kF32;
  GridShape shape;
};

// dst[to + (r, c)] = src[from + (r, c)] for a rows x cols rectangle. When the dtypes differ,
// one of them is fp32 (a storage dtype <-> fp32 conversion). src and dst have the same batch and
// inner sizes.
void copy_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                    int64_t rows, int64_t cols);

// total[i] += share[i] for n values, the share in any dtype (e.g. a gradient share arriving in
// the storage dtype); the sums stay in fp32.
void add_to_float(float* total, const void* share, DType share_dtype, size_t n);

// dst[to + (r, c)] += src[from + (r, c)], summed in fp32: dst must be fp32.
void add_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                   int64_t rows, int64_t cols);

}  // namespace seqpar
