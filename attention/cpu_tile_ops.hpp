#pragma once
// Building blocks of the CPU block kernels (internal to attention/): tile sizes, a vectorizable
// exp, the (O, LSE) row merge, fp32 tile products written as plain loops over contiguous fp32
// arrays (the vectorized index is never a reduction, so GCC -O3 vectorizes them without
// -ffast-math), storage-dtype row loads, and the per-thread scratch buffer.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "attention/block_params.hpp"
#include "core/dtype.hpp"

namespace seqpar::cpu_tiles {

inline constexpr int64_t kTileRows = 64;  // query rows per tile: positions x q heads of a group
inline constexpr int64_t kTileKeys = 64;  // keys per tile
inline constexpr int64_t kRowBlock = 4;   // rows (or keys) updated together in the tile products
inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Query positions per tile when all `group` q heads of a kv head share the tile.
inline int64_t tile_positions(int64_t group) { return group >= kTileRows ? 1 : kTileRows / group; }

// exp(x) for x in [kExpMinArg, kExpMaxArg], relative error about 1e-7: x = n ln2 + r with
// |r| <= ln2 / 2, exp(r) by its degree-7 Taylor polynomial, 2^n from the exponent bits. At
// kExpMinArg n = -127 and the exponent bits are 0, so tiny results flush to 0.
inline constexpr float kExpMinArg = -88.0f;
inline constexpr float kExpMaxArg = 88.0f;
inline float exp_in_range(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // few mantissa bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr int32_t kExponentBias = 127;
  const float n = (x * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float poly = 1.0f / 5040.0f;
  poly = poly * r + 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  const int32_t biased = static_cast<int32_t>(n) + kExponentBias;  // in [0, 254]
  return poly * std::bit_cast<float>(static_cast<uint32_t>(biased) << 23);
}

// s[j] = exp(s[j] - shift) for j < n; s[j] = -inf gives 0. Two passes (clamp, then exp) so
// that GCC if-converts the clamp and vectorizes both without -ffast-math.
inline void exp_shifted_row(float* s, int64_t n, float shift) {
  for (int64_t j = 0; j < n; ++j) {
    const float x = s[j] - shift;
    const float lo = x < kExpMinArg ? kExpMinArg : x;
    s[j] = lo > kExpMaxArg ? kExpMaxArg : lo;
  }
  for (int64_t j = 0; j < n; ++j) s[j] = exp_in_range(s[j]);
}

// Largest of the n (a multiple of 4) values and `init`, with 4 running maxima.
inline float row_max(const float* s, int64_t n, float init) {
  float m[4] = {init, init, init, init};
  for (int64_t j = 0; j < n; j += 4) {
    for (int64_t u = 0; u < 4; ++u) m[u] = s[j + u] > m[u] ? s[j + u] : m[u];
  }
  const float m01 = m[0] > m[1] ? m[0] : m[1];
  const float m23 = m[2] > m[3] ? m[2] : m[3];
  return m01 > m23 ? m01 : m23;
}

// Sum of the n (a multiple of 4) values, with 4 running sums.
inline float row_sum(const float* s, int64_t n) {
  float t[4] = {};
  for (int64_t j = 0; j < n; j += 4) {
    for (int64_t u = 0; u < 4; ++u) t[u] += s[j + u];
  }
  return (t[0] + t[1]) + (t[2] + t[3]);
}

// Merges the partial (o2, lse2) into (o1, lse1): one row of d values, max-shifted form.
// Exact when either side is fully masked (lse -inf); never forms -inf - -inf.
inline void merge_row(float* o1, float* lse1, const float* o2, float lse2, int64_t d) {
  if (lse2 == kNegInf) return;
  if (*lse1 == kNegInf) {
    std::memcpy(o1, o2, static_cast<size_t>(d) * sizeof(float));
    *lse1 = lse2;
    return;
  }
  const float m = *lse1 > lse2 ? *lse1 : lse2;
  const float w1 = std::exp(*lse1 - m);
  const float w2 = std::exp(lse2 - m);
  const float sum = w1 + w2;
  const float c1 = w1 / sum;
  const float c2 = w2 / sum;
  for (int64_t i = 0; i < d; ++i) o1[i] = c1 * o1[i] + c2 * o2[i];
  *lse1 = m + std::log(sum);
}

// s (rows, kTileKeys) = a (rows, d) . bt (d, kTileKeys): the score-like tile products
// (Q K^T, dO V^T) with the second operand stored transposed so the vector loop runs over keys.
inline void tile_products(const float* a, int64_t rows, const float* bt, int64_t d, float* s) {
  int64_t r = 0;
  for (; r + kRowBlock <= rows; r += kRowBlock) {
    float acc0[kTileKeys] = {}, acc1[kTileKeys] = {}, acc2[kTileKeys] = {}, acc3[kTileKeys] = {};
    const float* a0 = a + r * d;
    for (int64_t e = 0; e < d; ++e) {
      const float x0 = a0[e], x1 = a0[d + e], x2 = a0[2 * d + e], x3 = a0[3 * d + e];
      const float* b = bt + e * kTileKeys;
      for (int64_t j = 0; j < kTileKeys; ++j) {
        acc0[j] += x0 * b[j];
        acc1[j] += x1 * b[j];
        acc2[j] += x2 * b[j];
        acc3[j] += x3 * b[j];
      }
    }
    std::memcpy(s + r * kTileKeys, acc0, sizeof(acc0));
    std::memcpy(s + (r + 1) * kTileKeys, acc1, sizeof(acc1));
    std::memcpy(s + (r + 2) * kTileKeys, acc2, sizeof(acc2));
    std::memcpy(s + (r + 3) * kTileKeys, acc3, sizeof(acc3));
  }
  for (; r < rows; ++r) {
    float acc[kTileKeys] = {};
    for (int64_t e = 0; e < d; ++e) {
      const float x = a[r * d + e];
      const float* b = bt + e * kTileKeys;
      for (int64_t j = 0; j < kTileKeys; ++j) acc[j] += x * b[j];
    }
    std::memcpy(s + r * kTileKeys, acc, sizeof(acc));
  }
}

// dst (d) += coef * sum_t w[t * w_stride] * src[t * src_stride + :] over t < n: P V, dS K,
// dS^T Q and P^T dO rows, four source rows per pass over dst.
inline void add_weighted_rows(float* dst, const float* w, int64_t w_stride, int64_t n,
                              const float* src, int64_t src_stride, int64_t d, float coef) {
  int64_t t = 0;
  for (; t + kRowBlock <= n; t += kRowBlock) {
    const float w0 = coef * w[t * w_stride], w1 = coef * w[(t + 1) * w_stride];
    const float w2 = coef * w[(t + 2) * w_stride], w3 = coef * w[(t + 3) * w_stride];
    if (w0 == 0.0f && w1 == 0.0f && w2 == 0.0f && w3 == 0.0f) continue;
    const float* s0 = src + t * src_stride;
    const float* s1 = s0 + src_stride;
    const float* s2 = s1 + src_stride;
    const float* s3 = s2 + src_stride;
    for (int64_t e = 0; e < d; ++e) dst[e] += (w0 * s0[e] + w1 * s1[e]) + (w2 * s2[e] + w3 * s3[e]);
  }
  for (; t < n; ++t) {
    const float wt = coef * w[t * w_stride];
    if (wt == 0.0f) continue;
    const float* st = src + t * src_stride;
    for (int64_t e = 0; e < d; ++e) dst[e] += wt * st[e];
  }
}

// n elements of a storage-dtype array starting at element `first`, as fp32.
inline void load_floats(const void* src, DType dtype, int64_t first, int64_t n, float* dst) {
  const auto* bytes =
      static_cast<const unsigned char*>(src) + first * static_cast<int64_t>(dtype_size(dtype));
  convert_to_float(bytes, dtype, dst, static_cast<size_t>(n));
}

// Writes row (d) into column j of a transposed tile (d, kTileKeys).
inline void store_column(const float* row, int64_t d, int64_t j, float* tile_t) {
  for (int64_t e = 0; e < d; ++e) tile_t[e * kTileKeys + j] = row[e];
}

// Sizes (floats) of N consecutive regions of a kernel's work area, and their carving.
template <size_t N>
struct RegionSizes {
  int64_t sizes[N];
  int64_t total() const {
    int64_t n = 0;
    for (int64_t s : sizes) n += s;
    return n;
  }
  // Points slots[i] at region i of the area starting at `base`.
  void carve(float* base, float** const (&slots)[N]) const {
    for (size_t i = 0; i < N; ++i) {
      *slots[i] = base;
      base += sizes[i];
    }
  }
};

// Floats forward needs for blocks of `shape` (defined in cpu_block_forward.cpp).
size_t cpu_forward_scratch_floats(const BlockShape& shape);

// The work area of one kernel call: the caller's `given` one, else the calling thread's own,
// grown (never shrunk) to at least `floats` (one allocation per thread and size class).
inline float* kernel_scratch(float* given, size_t floats) {
  if (given != nullptr) return given;
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

}  // namespace seqpar::cpu_tiles
