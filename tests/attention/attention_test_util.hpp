#pragma once
// Test problems for the attention kernels: random q/k/v/dout stored in a storage dtype together
// with their exactly rounded fp64 copies (the reference sees the same values as the kernel),
// position maps (contiguous with offsets, striped, zigzag-like index arrays), the fp64
// reference results, and the relative L2 error used by every tolerance.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention/block_params.hpp"
#include "attention/reference.hpp"
#include "core/dtype.hpp"
#include "core/random.hpp"

namespace seqpar::test {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

enum class MapKind { kContiguous, kStrided, kZigzag, kReversed };

// A block's positions: contiguous offset + i, striped offset + stride * i, zigzag two chunks
// (first half at offset, second half at offset2), or reversed offset + (n - 1 - i) as an index.
struct MapSpec {
  MapKind kind = MapKind::kContiguous;
  int64_t offset = 0;
  int64_t stride = 1;
  int64_t offset2 = 0;
};

struct Case {
  int64_t batch, seq_q, seq_k, heads_q, heads_kv, head_dim;
  MaskKind mask;
  DType dtype;
  MapSpec q_map, k_map;
};

// A tensor in a storage dtype and its exactly rounded fp64 copy.
struct Stored {
  std::vector<unsigned char> bytes;
  std::vector<double> values;
  const void* data() const { return bytes.data(); }
};

inline Stored random_stored(uint64_t seed, uint64_t stream, int64_t n, DType dtype, float amp) {
  Stored t;
  t.bytes.resize(static_cast<size_t>(n) * dtype_size(dtype));
  t.values.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float x =
        round_to_dtype(amp * uniform_pm1(seed, stream, static_cast<uint64_t>(i)), dtype);
    store_float(t.bytes.data(), dtype, static_cast<size_t>(i), x);
    t.values[static_cast<size_t>(i)] = x;
  }
  return t;
}

inline std::vector<int64_t> expand_positions(const MapSpec& m, int64_t n) {
  std::vector<int64_t> pos(static_cast<size_t>(n));
  const int64_t first_half = (n + 1) / 2;
  for (int64_t i = 0; i < n; ++i) {
    int64_t p = 0;
    switch (m.kind) {
      case MapKind::kContiguous:
        p = m.offset + i;
        break;
      case MapKind::kStrided:
        p = m.offset + m.stride * i;
        break;
      case MapKind::kZigzag:
        p = i < first_half ? m.offset + i : m.offset2 + (i - first_half);
        break;
      case MapKind::kReversed:
        p = m.offset + (n - 1 - i);
        break;
    }
    pos[static_cast<size_t>(i)] = p;
  }
  return pos;
}

// The map the kernel gets: affine where the spec is affine, else an index into `pos`.
inline PositionMap kernel_map(const MapSpec& m, const std::vector<int64_t>& pos) {
  switch (m.kind) {
    case MapKind::kContiguous:
      return PositionMap::affine(m.offset, 1);
    case MapKind::kStrided:
      return PositionMap::affine(m.offset, m.stride);
    default:
      return PositionMap::indexed(pos.data());
  }
}

struct Problem {
  Case c;
  float scale = 1.0f;
  std::vector<int64_t> q_pos, k_pos;  // (Sq), (Sk)
  Stored q, k, v, dout;               // q, dout (B, Sq, Hq, D); k, v (B, Sk, Hkv, D)

  BlockShape shape() const {
    return {c.batch, c.seq_q, c.seq_k, c.heads_q, c.heads_kv, c.head_dim};
  }
  int64_t q_elems() const { return c.batch * c.seq_q * c.heads_q * c.head_dim; }
  int64_t k_elems() const { return c.batch * c.seq_k * c.heads_kv * c.head_dim; }
  int64_t stat_elems() const { return c.batch * c.heads_q * c.seq_q; }
  ReferenceBlock reference() const {
    return {c.batch,
            c.seq_q,
            c.seq_k,
            c.heads_q,
            c.heads_kv,
            c.head_dim,
            q.values.data(),
            k.values.data(),
            v.values.data(),
            q_pos.data(),
            k_pos.data(),
            c.mask,
            static_cast<double>(scale)};
  }
  BlockForwardParams forward_params(float* out, float* lse, bool accumulate) const {
    BlockForwardParams p;
    p.shape = shape();
    p.dtype = c.dtype;
    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.out = out;
    p.lse = lse;
    p.q_pos = kernel_map(c.q_map, q_pos);
    p.k_pos = kernel_map(c.k_map, k_pos);
    p.mask = c.mask;
    p.softmax_scale = scale;
    p.accumulate = accumulate;
    return p;
  }
  BlockBackwardParams backward_params(const float* lse, const float* delta, float* dq, float* dk,
                                      float* dv) const {
    BlockBackwardParams p;
    p.shape = shape();
    p.dtype = c.dtype;
    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.dout = dout.data();
    p.lse = lse;
    p.delta = delta;
    p.dq = dq;
    p.dk = dk;
    p.dv = dv;
    p.q_pos = kernel_map(c.q_map, q_pos);
    p.k_pos = kernel_map(c.k_map, k_pos);
    p.mask = c.mask;
    p.softmax_scale = scale;
    return p;
  }
};

// Softmax scale 2/sqrt(D): logits of unit-range data spread enough to make the softmax peaked.
inline Problem make_problem(const Case& c, uint64_t seed) {
  Problem pr;
  pr.c = c;
  pr.scale = 2.0f / std::sqrt(static_cast<float>(c.head_dim));
  pr.q_pos = expand_positions(c.q_map, c.seq_q);
  pr.k_pos = expand_positions(c.k_map, c.seq_k);
  pr.q = random_stored(seed, 1, pr.q_elems(), c.dtype, 1.0f);
  pr.k = random_stored(seed, 2, pr.k_elems(), c.dtype, 1.0f);
  pr.v = random_stored(seed, 3, pr.k_elems(), c.dtype, 1.0f);
  pr.dout = random_stored(seed, 4, pr.q_elems(), c.dtype, 1.0f);
  return pr;
}

// fp64 reference forward plus delta = rowsum(dout * out) (B, Hq, Sq).
struct ReferenceResult {
  std::vector<double> out, lse, delta;
};

inline ReferenceResult reference_results(const Problem& pr) {
  ReferenceResult r;
  r.out.resize(static_cast<size_t>(pr.q_elems()));
  r.lse.resize(static_cast<size_t>(pr.stat_elems()));
  r.delta.resize(static_cast<size_t>(pr.stat_elems()));
  reference_forward(pr.reference(), r.out.data(), r.lse.data());
  const Case& c = pr.c;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t i = 0; i < c.seq_q; ++i) {
      for (int64_t h = 0; h < c.heads_q; ++h) {
        double s = 0.0;
        const int64_t row = ((b * c.seq_q + i) * c.heads_q + h) * c.head_dim;
        for (int64_t e = 0; e < c.head_dim; ++e) {
          s += r.out[static_cast<size_t>(row + e)] * pr.dout.values[static_cast<size_t>(row + e)];
        }
        r.delta[static_cast<size_t>((b * c.heads_q + h) * c.seq_q + i)] = s;
      }
    }
  }
  return r;
}

inline double l2_norm(const std::vector<double>& x) {
  double sum = 0.0;
  for (double v : x) sum += v * v;
  return std::sqrt(sum);
}

template <class T>
double l2_distance(const std::vector<T>& x, const std::vector<double>& ref) {
  double sum = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(x[i]) - ref[i];
    sum += d * d;
  }
  return std::sqrt(sum);
}

// ||x - ref|| / ||ref|| (ref == 0 everywhere: ||x||); the caller checks finiteness separately.
template <class T>
double relative_l2(const std::vector<T>& x, const std::vector<double>& ref) {
  const double norm = l2_norm(ref);
  const double dist = l2_distance(x, ref);
  return norm > 0.0 ? dist / norm : dist;
}

// Relative L2 tolerance of kernel outputs. The kernels read inputs already rounded to the
// storage dtype (and the reference reads the same rounded values) and write fp32, so only fp32
// arithmetic separates them, whatever the storage dtype: the fp32 tolerance applies to all.
inline double tolerance(DType /*storage dtype*/) { return 1e-5; }

template <class T>
bool all_finite(const std::vector<T>& x) {
  for (const T& v : x) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace seqpar::test
