#pragma once
// fp64 reference attention: naive, row by row, for checking everything else.
// Handles any query/key position sets, so the whole-sequence reference can be computed in
// pieces (some query rows against all keys; all queries against some keys) and still be the
// single-device result of the whole problem.
#include <cstdint>

#include "attention/block_params.hpp"

namespace seqpar {

struct ReferenceBlock {
  int64_t batch = 0, seq_q = 0, seq_k = 0, heads_q = 0, heads_kv = 0, head_dim = 0;
  const double* q = nullptr;       // (B, Sq, Hq, D)
  const double* k = nullptr;       // (B, Sk, Hkv, D)
  const double* v = nullptr;       // (B, Sk, Hkv, D)
  const int64_t* q_pos = nullptr;  // (Sq) absolute positions
  const int64_t* k_pos = nullptr;  // (Sk)
  MaskKind mask = MaskKind::kFull;
  double softmax_scale = 1.0;
};

// out (B, Sq, Hq, D), lse (B, Hq, Sq); fully masked rows: out 0, lse -inf.
void reference_forward(const ReferenceBlock& r, double* out, double* lse);

// Gradients of the pairs in this block, given the FINAL lse and delta = rowsum(dout * out) of
// each query row (over all keys of the whole problem). Any of dq / dk / dv may be null.
// dq (B, Sq, Hq, D); dk, dv (B, Sk, Hkv, D) summed over the query heads of each group. Overwrites.
void reference_backward(const ReferenceBlock& r, const double* dout, const double* lse,
                        const double* delta, double* dq, double* dk, double* dv);

// delta (B, H, S) = rowsum(dout * out), with dout, out (B, S, H, D).
void reference_delta(const double* dout, const double* out, int64_t batch, int64_t seq,
                     int64_t heads, int64_t head_dim, double* delta);

}  // namespace seqpar
