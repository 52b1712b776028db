#pragma once
// Inputs shared by the buffer_ops tests (buffer_ops_test.cpp on the host,
// buffer_ops_cuda_test.cpp on a GPU): counter-based random arrays in each storage dtype, and
// rectangle cases with offsets on both sides, in the token layout (B, S, H, D) and the
// statistic layout (B, H, S, 1).
#include <cstdint>
#include <vector>

#include "core/dtype.hpp"
#include "core/random.hpp"
#include "runtime/grid_copy.hpp"

namespace seqpar::test {

constexpr DType kStorageDtypes[] = {DType::kF32, DType::kBF16, DType::kF16};

// n values in `dtype`, uniform in [-scale, scale), as bytes.
inline std::vector<unsigned char> random_bytes(DType dtype, size_t n, uint64_t stream,
                                               float scale = 4.0f) {
  std::vector<unsigned char> bytes(n * dtype_size(dtype));
  for (size_t i = 0; i < n; ++i)
    store_float(bytes.data(), dtype, i, scale * uniform_pm1(2026, stream, i));
  return bytes;
}

inline size_t grid_elems(const GridShape& s) {
  return static_cast<size_t>(s.batch * s.rows * s.cols * s.inner);
}

// A rows x cols rectangle from `from` in a src grid to `to` in a dst grid.
struct RectCase {
  GridShape src, dst;
  GridCorner from, to;
  int64_t rows = 0, cols = 0;
};

inline std::vector<RectCase> rect_cases() {
  return {
      // (B, S, H, D): tokens [1, 4) x heads [2, 6) -> tokens [2, 5) x heads [3, 7)
      {{2, 5, 7, 3}, {2, 6, 9, 3}, {1, 2}, {2, 3}, 3, 4},
      // (B, H, S, 1): heads [1, 3) x tokens [0, 5) -> heads [0, 2) x tokens [4, 9)
      {{3, 4, 5, 1}, {3, 2, 11, 1}, {1, 0}, {0, 4}, 2, 5},
      // a whole grid into the corner of a larger one
      {{1, 3, 2, 8}, {1, 4, 3, 8}, {0, 0}, {1, 1}, 3, 2},
      // an empty rectangle changes nothing
      {{2, 3, 3, 2}, {2, 3, 3, 2}, {0, 0}, {0, 0}, 0, 3},
  };
}

// The (src, dst) dtype pairs a copy supports: same dtype, or one side fp32.
struct DtypePair {
  DType src, dst;
};
inline std::vector<DtypePair> copy_dtype_pairs() {
  std::vector<DtypePair> pairs;
  for (DType a : kStorageDtypes) {
    for (DType b : kStorageDtypes) {
      if (a == b || a == DType::kF32 || b == DType::kF32) pairs.push_back({a, b});
    }
  }
  return pairs;
}

}  // namespace seqpar::test
