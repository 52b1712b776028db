#pragma once
// The fp64 reference (attention/reference.hpp) for the public-API tests, behind plain types:
// the tests include the public headers, whose names (seqpar::v0::...) would be ambiguous next to
// the internal ones in one translation unit, so only api_reference.cpp sees the internal side.
#include <cstdint>
#include <vector>

namespace api_test {

struct ReferenceProblem {
  int64_t batch = 1, seq = 0, heads_q = 0, heads_kv = 0, head_dim = 0;
  bool causal = true;
  double softmax_scale = 0.0;  // 0: 1 / sqrt(D)
};

// Whole tensors: q, dout, out, dq (B, S, Hq, D); k, v, dk, dv (B, S, Hkv, D); lse (B, Hq, S).
struct ReferenceResult {
  std::vector<double> out, lse, dq, dk, dv;
};

ReferenceResult reference_attention(const ReferenceProblem& p, const std::vector<double>& q,
                                    const std::vector<double>& k, const std::vector<double>& v,
                                    const std::vector<double>& dout);

// Decoding: queries at positions q_pos (n of them, (B, n, Hq, D)) against keys at positions
// k_pos ((B, Sk, Hkv, D)), causal by position: out (B, n, Hq, D), lse (B, Hq, n).
ReferenceResult reference_decode(const ReferenceProblem& p, const std::vector<double>& q,
                                 const std::vector<int64_t>& q_pos, const std::vector<double>& k,
                                 const std::vector<double>& v, const std::vector<int64_t>& k_pos);

// ||x - ref|| / ||ref||.
double relative_error(const std::vector<float>& x, const std::vector<double>& ref);

}  // namespace api_test
