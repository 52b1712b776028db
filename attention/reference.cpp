// reference_forward / reference_backward: fp64 attention, one query row at a time (O(Sk)
// scratch), straight from the definitions; the yardstick for every kernel and scheme.
#include "attention/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace seqpar {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Dot product of two contiguous rows, four independent partial sums.
double dot(const double* a, const double* b, int64_t n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  int64_t e = 0;
  for (; e + 4 <= n; e += 4) {
    s0 += a[e] * b[e];
    s1 += a[e + 1] * b[e + 1];
    s2 += a[e + 2] * b[e + 2];
    s3 += a[e + 3] * b[e + 3];
  }
  for (; e < n; ++e) s0 += a[e] * b[e];
  return (s0 + s1) + (s2 + s3);
}

// y (n) += a * x (n)
void axpy(double a, const double* x, double* y, int64_t n) {
  for (int64_t e = 0; e < n; ++e) y[e] += a * x[e];
}

// Flat offsets of row (b, i, h) of a (B, S, H, D) tensor and of entry (b, h, i) of (B, H, S).
struct Index {
  const ReferenceBlock& r;
  int64_t group() const { return r.heads_q / r.heads_kv; }
  int64_t q_row(int64_t b, int64_t i, int64_t h) const {
    return ((b * r.seq_q + i) * r.heads_q + h) * r.head_dim;
  }
  int64_t k_row(int64_t b, int64_t j, int64_t kh) const {
    return ((b * r.seq_k + j) * r.heads_kv + kh) * r.head_dim;
  }
  int64_t stat(int64_t b, int64_t h, int64_t i) const { return (b * r.heads_q + h) * r.seq_q + i; }
};

}  // namespace

void reference_forward(const ReferenceBlock& r, double* out, double* lse) {
  const Index ix{r};
  const int64_t d = r.head_dim;
  std::vector<double> scores(static_cast<size_t>(r.seq_k));  // (Sk) one row of scores
  for (int64_t b = 0; b < r.batch; ++b) {
    for (int64_t h = 0; h < r.heads_q; ++h) {
      const int64_t kh = h / ix.group();
      for (int64_t i = 0; i < r.seq_q; ++i) {
        const double* q = r.q + ix.q_row(b, i, h);
        double* o = out + ix.q_row(b, i, h);
        double m = kNegInf;
        for (int64_t j = 0; j < r.seq_k; ++j) {
          const bool kept = attention_pair_kept(r.mask, r.q_pos[i], r.k_pos[j]);
          scores[j] = kept ? r.softmax_scale * dot(q, r.k + ix.k_row(b, j, kh), d) : kNegInf;
          m = std::max(m, scores[j]);
        }
        std::fill(o, o + d, 0.0);
        if (m == kNegInf) {  // no kept key: out 0, lse -inf
          lse[ix.stat(b, h, i)] = kNegInf;
          continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < r.seq_k; ++j) {
          if (scores[j] == kNegInf) continue;
          const double p = std::exp(scores[j] - m);
          sum += p;
          axpy(p, r.v + ix.k_row(b, j, kh), o, d);
        }
        for (int64_t e = 0; e < d; ++e) o[e] /= sum;
        lse[ix.stat(b, h, i)] = m + std::log(sum);
      }
    }
  }
}

void reference_backward(const ReferenceBlock& r, const double* dout, const double* lse,
                        const double* delta, double* dq, double* dk, double* dv) {
  const Index ix{r};
  const int64_t d = r.head_dim;
  const size_t q_elems = static_cast<size_t>(r.batch * r.seq_q * r.heads_q * d);
  const size_t k_elems = static_cast<size_t>(r.batch * r.seq_k * r.heads_kv * d);
  if (dq != nullptr) std::fill(dq, dq + q_elems, 0.0);
  if (dk != nullptr) std::fill(dk, dk + k_elems, 0.0);
  if (dv != nullptr) std::fill(dv, dv + k_elems, 0.0);
  for (int64_t b = 0; b < r.batch; ++b) {
    for (int64_t h = 0; h < r.heads_q; ++h) {
      const int64_t kh = h / ix.group();
      for (int64_t i = 0; i < r.seq_q; ++i) {
        const double row_lse = lse[ix.stat(b, h, i)];
        if (row_lse == kNegInf) continue;  // no kept key anywhere: no gradient
        const double row_delta = delta[ix.stat(b, h, i)];
        const double* q = r.q + ix.q_row(b, i, h);
        const double* g = dout + ix.q_row(b, i, h);
        for (int64_t j = 0; j < r.seq_k; ++j) {
          if (!attention_pair_kept(r.mask, r.q_pos[i], r.k_pos[j])) continue;
          const int64_t kv = ix.k_row(b, j, kh);
          const double p = std::exp(r.softmax_scale * dot(q, r.k + kv, d) - row_lse);
          const double ds = p * (dot(g, r.v + kv, d) - row_delta);
          if (dq != nullptr) axpy(r.softmax_scale * ds, r.k + kv, dq + ix.q_row(b, i, h), d);
          if (dk != nullptr) axpy(r.softmax_scale * ds, q, dk + kv, d);
          if (dv != nullptr) axpy(p, g, dv + kv, d);
        }
      }
    }
  }
}

void reference_delta(const double* dout, const double* out, int64_t batch, int64_t seq,
                     int64_t heads, int64_t head_dim, double* delta) {
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < seq; ++i) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t row = ((b * seq + i) * heads + h) * head_dim;
        double sum = 0.0;
        for (int64_t e = 0; e < head_dim; ++e) sum += dout[row + e] * out[row + e];
        delta[(b * heads + h) * seq + i] = sum;
      }
    }
  }
}

}  // namespace seqpar
