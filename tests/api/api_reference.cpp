// api_reference.hpp over the project's fp64 reference (attention/reference.hpp).
#include "api_reference.hpp"

#include <cmath>
#include <numeric>

#include "attention/reference.hpp"

namespace api_test {
namespace {

seqpar::ReferenceBlock block_of(const ReferenceProblem& p, int64_t seq_q, int64_t seq_k) {
  seqpar::ReferenceBlock r;
  r.batch = p.batch;
  r.seq_q = seq_q;
  r.seq_k = seq_k;
  r.heads_q = p.heads_q;
  r.heads_kv = p.heads_kv;
  r.head_dim = p.head_dim;
  r.mask = p.causal ? seqpar::MaskKind::kCausal : seqpar::MaskKind::kFull;
  r.softmax_scale =
      p.softmax_scale > 0 ? p.softmax_scale : 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  return r;
}

}  // namespace

ReferenceResult reference_attention(const ReferenceProblem& p, const std::vector<double>& q,
                                    const std::vector<double>& k, const std::vector<double>& v,
                                    const std::vector<double>& dout) {
  std::vector<int64_t> positions(static_cast<size_t>(p.seq));
  std::iota(positions.begin(), positions.end(), 0);
  seqpar::ReferenceBlock r = block_of(p, p.seq, p.seq);
  r.q = q.data();
  r.k = k.data();
  r.v = v.data();
  r.q_pos = positions.data();
  r.k_pos = positions.data();
  ReferenceResult result{std::vector<double>(q.size()),
                         std::vector<double>(static_cast<size_t>(p.batch * p.heads_q * p.seq)),
                         std::vector<double>(q.size()), std::vector<double>(k.size()),
                         std::vector<double>(v.size())};
  seqpar::reference_forward(r, result.out.data(), result.lse.data());
  std::vector<double> delta(result.lse.size());
  seqpar::reference_delta(dout.data(), result.out.data(), p.batch, p.seq, p.heads_q, p.head_dim,
                          delta.data());
  seqpar::reference_backward(r, dout.data(), result.lse.data(), delta.data(), result.dq.data(),
                             result.dk.data(), result.dv.data());
  return result;
}

ReferenceResult reference_decode(const ReferenceProblem& p, const std::vector<double>& q,
                                 const std::vector<int64_t>& q_pos, const std::vector<double>& k,
                                 const std::vector<double>& v, const std::vector<int64_t>& k_pos) {
  const auto n = static_cast<int64_t>(q_pos.size());
  seqpar::ReferenceBlock r = block_of(p, n, static_cast<int64_t>(k_pos.size()));
  r.mask = seqpar::MaskKind::kCausal;
  r.q = q.data();
  r.k = k.data();
  r.v = v.data();
  r.q_pos = q_pos.data();
  r.k_pos = k_pos.data();
  ReferenceResult result;
  result.out.resize(q.size());
  result.lse.resize(static_cast<size_t>(p.batch * p.heads_q * n));
  seqpar::reference_forward(r, result.out.data(), result.lse.data());
  return result;
}

double relative_error(const std::vector<float>& x, const std::vector<double>& ref) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < x.size() && i < ref.size(); ++i) {
    diff += (x[i] - ref[i]) * (x[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return x.size() == ref.size() ? std::sqrt(diff / (norm > 0.0 ? norm : 1.0)) : INFINITY;
}

}  // namespace api_test
