// Distributed fp64 reference check (see reference_check.hpp).
#include "harness/reference_check.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "attention/reference.hpp"
#include "comm/comm_staging.hpp"

namespace seqpar {
namespace {

using Doubles = std::vector<double>;

Doubles doubles(int64_t n) { return Doubles(static_cast<size_t>(n)); }

// Accumulates sum((x - ref)^2) and sum(ref^2) of one tensor.
struct L2 {
  double diff = 0, ref = 0;
  void add(double x, double r) {
    if (std::isinf(x) && std::isinf(r) && (x > 0) == (r > 0))
      return;  // equal infinities (masked rows)
    diff += (x - r) * (x - r);
    ref += r * r;
  }
  double relative() const { return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff); }
};

L2 compare_storage(const void* got, DType dtype, const Doubles& ref) {
  L2 l2;
  for (size_t i = 0; i < ref.size(); ++i) l2.add(load_float(got, dtype, i), ref[i]);
  return l2;
}

}  // namespace

double check_tolerance(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return 2e-2;
    case DType::kF16:
      return 5e-3;
    default:
      return 1e-5;
  }
}

StatusOr<CheckErrors> check_against_reference(const AttentionProblem& p, const Layout& layout,
                                              Communicator& comm, uint64_t seed,
                                              const RankTensors& results, bool backward) {
  const int rank = comm.rank();
  const int64_t S = p.seq, local = layout.local_seq(rank), B = p.batch;
  const int64_t Hq = p.heads_q, Hkv = p.heads_kv, D = p.head_dim;
  const size_t q_row = static_cast<size_t>(Hq * D) * sizeof(double);
  const size_t kv_row = static_cast<size_t>(Hkv * D) * sizeof(double);

  std::vector<int64_t> all_positions(static_cast<size_t>(S)),
      own_positions(static_cast<size_t>(local));
  for (int64_t t = 0; t < S; ++t) all_positions[static_cast<size_t>(t)] = t;
  layout.positions(rank, own_positions.data());

  // Whole inputs (B, S, H, D) and this rank's rows of them (B, S_local, H, D).
  Doubles q = doubles(B * S * Hq * D), k = doubles(B * S * Hkv * D), v = doubles(B * S * Hkv * D);
  fill_input_global(p, seed, InputTensor::kQ, q.data());
  fill_input_global(p, seed, InputTensor::kK, k.data());
  fill_input_global(p, seed, InputTensor::kV, v.data());
  Doubles q_own = doubles(B * local * Hq * D);
  scatter_to_shard(layout, rank, q.data(), q_own.data(), B, q_row);

  // Forward: own query rows against every key.
  ReferenceBlock rows{B,
                      local,
                      S,
                      Hq,
                      Hkv,
                      D,
                      q_own.data(),
                      k.data(),
                      v.data(),
                      own_positions.data(),
                      all_positions.data(),
                      p.mask,
                      p.softmax_scale};
  Doubles out_ref = doubles(B * local * Hq * D), lse_ref = doubles(B * Hq * local);
  reference_forward(rows, out_ref.data(), lse_ref.data());

  enum { kOut, kLse, kDq, kDk, kDv, kTensors };
  L2 l2[kTensors];
  l2[kOut] = compare_storage(results.out.data(), p.dtype, out_ref);
  for (size_t i = 0; i < lse_ref.size(); ++i) l2[kLse].add(results.lse.as<float>()[i], lse_ref[i]);

  if (backward) {
    Doubles dout = doubles(B * S * Hq * D), dout_own = doubles(B * local * Hq * D);
    fill_input_global(p, seed, InputTensor::kDout, dout.data());
    scatter_to_shard(layout, rank, dout.data(), dout_own.data(), B, q_row);

    // delta (B, Hq, S_local) = rowsum(dout * out_ref) of own rows; then every row's lse, delta.
    Doubles delta_own = doubles(B * Hq * local);
    reference_delta(dout_own.data(), out_ref.data(), B, local, Hq, D, delta_own.data());
    // Each rank scatters its rows into zeroed (B, Hq, S) tables; a sum all-reduce fills them
    // (shards may differ by a token, so no all-gather of equal slices).
    Doubles lse_all = doubles(B * Hq * S), delta_all = doubles(B * Hq * S);
    for (int64_t bh = 0; bh < B * Hq; ++bh)
      for (int64_t i = 0; i < local; ++i) {
        const size_t from = static_cast<size_t>(bh * local + i);
        const size_t to = static_cast<size_t>(bh * S + layout.global_position(rank, i));
        lse_all[to] = lse_ref[from];
        delta_all[to] = delta_own[from];
      }
    SEQPAR_RETURN_IF_ERROR(
        all_reduce_host(comm, lse_all.data(), lse_all.size(), DType::kF64, ReduceOp::kSum));
    SEQPAR_RETURN_IF_ERROR(
        all_reduce_host(comm, delta_all.data(), delta_all.size(), DType::kF64, ReduceOp::kSum));

    // dQ of own rows (against every key); dK, dV of own keys (against every query).
    Doubles dq_ref = doubles(B * local * Hq * D);
    reference_backward(rows, dout_own.data(), lse_ref.data(), delta_own.data(), dq_ref.data(),
                       nullptr, nullptr);
    Doubles k_own = doubles(B * local * Hkv * D), v_own = doubles(B * local * Hkv * D);
    scatter_to_shard(layout, rank, k.data(), k_own.data(), B, kv_row);
    scatter_to_shard(layout, rank, v.data(), v_own.data(), B, kv_row);
    ReferenceBlock keys{B,
                        S,
                        local,
                        Hq,
                        Hkv,
                        D,
                        q.data(),
                        k_own.data(),
                        v_own.data(),
                        all_positions.data(),
                        own_positions.data(),
                        p.mask,
                        p.softmax_scale};
    Doubles dk_ref = doubles(B * local * Hkv * D), dv_ref = doubles(B * local * Hkv * D);
    reference_backward(keys, dout.data(), lse_all.data(), delta_all.data(), nullptr, dk_ref.data(),
                       dv_ref.data());

    l2[kDq] = compare_storage(results.dq.data(), p.dtype, dq_ref);
    l2[kDk] = compare_storage(results.dk.data(), p.dtype, dk_ref);
    l2[kDv] = compare_storage(results.dv.data(), p.dtype, dv_ref);
  }

  double sums[2 * kTensors];
  for (int t = 0; t < kTensors; ++t) {
    sums[2 * t] = l2[t].diff;
    sums[2 * t + 1] = l2[t].ref;
  }
  SEQPAR_RETURN_IF_ERROR(all_reduce_host(comm, sums, 2 * kTensors, DType::kF64, ReduceOp::kSum));
  for (int t = 0; t < kTensors; ++t) l2[t] = L2{sums[2 * t], sums[2 * t + 1]};

  CheckErrors e;
  e.backward = backward;
  e.tolerance = check_tolerance(p.dtype);
  e.out = l2[kOut].relative();
  e.lse = l2[kLse].relative();
  e.dq = l2[kDq].relative();
  e.dk = l2[kDk].relative();
  e.dv = l2[kDv].relative();
  auto ok = [&e](double err) { return std::isfinite(err) && err <= e.tolerance; };
  e.passed = ok(e.out) && ok(e.lse) && (!backward || (ok(e.dq) && ok(e.dk) && ok(e.dv)));
  return e;
}

}  // namespace seqpar
