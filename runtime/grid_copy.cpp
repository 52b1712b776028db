// Rectangle copies and fp32 sums between (B, rows, cols, inner) grids (see grid_copy.hpp).
#include "runtime/grid_copy.hpp"

#include <cstring>

namespace seqpar {
namespace {

// Element index of (batch b, row r, col c, inner 0) in a grid of `shape`.
size_t element_at(const GridShape& shape, int64_t b, int64_t r, int64_t c) {
  return static_cast<size_t>(((b * shape.rows + r) * shape.cols + c) * shape.inner);
}

const char* byte_at(const ConstGrid& grid, size_t element) {
  return static_cast<const char*>(grid.data) + element * dtype_size(grid.dtype);
}

char* byte_at(const MutableGrid& grid, size_t element) {
  return static_cast<char*>(grid.data) + element * dtype_size(grid.dtype);
}

}  // namespace

void copy_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                    int64_t rows, int64_t cols) {
  const size_t run = static_cast<size_t>(cols * src.shape.inner);  // elements per (b, row)
  for (int64_t b = 0; b < src.shape.batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const char* in = byte_at(src, element_at(src.shape, b, from.row + r, from.col));
      char* out = byte_at(dst, element_at(dst.shape, b, to.row + r, to.col));
      if (src.dtype == dst.dtype) {
        std::memcpy(out, in, run * dtype_size(src.dtype));
      } else if (src.dtype == DType::kF32) {
        convert_from_float(reinterpret_cast<const float*>(in), out, dst.dtype, run);
      } else {
        convert_to_float(in, src.dtype, reinterpret_cast<float*>(out), run);
      }
    }
  }
}

void add_to_float(float* total, const void* share, DType share_dtype, size_t n) {
  for (size_t i = 0; i < n; ++i) total[i] += load_float(share, share_dtype, i);
}

void add_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                   int64_t rows, int64_t cols) {
  const size_t run = static_cast<size_t>(cols * src.shape.inner);
  for (int64_t b = 0; b < src.shape.batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const char* in = byte_at(src, element_at(src.shape, b, from.row + r, from.col));
      float* out =
          reinterpret_cast<float*>(byte_at(dst, element_at(dst.shape, b, to.row + r, to.col)));
      add_to_float(out, in, src.dtype, run);
    }
  }
}

}  // namespace seqpar
