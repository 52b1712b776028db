// Memory per rank of each candidate (see memory_model.hpp).
#include "launch/memory_model.hpp"

#include <algorithm>

#include "attention/dispatch.hpp"

namespace seqpar {
namespace {

// Element counts of `tokens` tokens (of each batch) with `hq` query and `hkv` kv heads.
struct Sizes {
  double q = 0, kv = 0, lse = 0;
  Sizes(const AttentionProblem& p, int64_t tokens, int64_t hq, int64_t hkv)
      : q(static_cast<double>(p.batch * tokens * hq * p.head_dim)),
        kv(static_cast<double>(p.batch * tokens * hkv * p.head_dim)),
        lse(static_cast<double>(p.batch * tokens * hq)) {}
};

bool host_device(const Topology& topo) {
  return topo.device_name.empty() || topo.device_name.rfind("cpu", 0) == 0;
}

// The CPU kernels' scratch for blocks of this shape (GPU kernels: none); `backward` false: a
// forward-only plan's (the forward kernel's alone).
double scratch_bytes(const Topology& topo, const AttentionProblem& p, int64_t sq, int64_t sk,
                     int64_t hq, int64_t hkv, bool backward) {
  if (!host_device(topo)) return 0;
  return static_cast<double>(block_kernel_scratch_bytes({p.batch, sq, sk, hq, hkv, p.head_dim},
                                                        {Device::kHost, nullptr}, backward));
}

// runtime/ring_attention.cpp's workspace for shards of `tokens` tokens on an n-rank ring;
// `backward` false: a forward-only plan's (K, V receive x2, O accumulator, kernel scratch).
double ring_workspace(const Topology& topo, const AttentionProblem& p, int64_t tokens, int64_t hq,
                      int64_t hkv, int n, bool backward) {
  const Sizes s(p, tokens, hq, hkv);
  const double e = static_cast<double>(dtype_size(p.dtype));
  const bool ring = n > 1;
  const double backward_only = s.lse * 4 + 4 * s.kv * 4 + (ring ? 4 * s.kv * e : 0);
  return (ring ? 4 * s.kv * e : 0) + s.q * 4 + (backward ? backward_only : 0) +
         scratch_bytes(topo, p, tokens, tokens, hq, hkv, backward);
}

}  // namespace

MemoryEstimate memory_per_rank(const ModelInputs& inputs, const Candidate& candidate,
                               const HeadShardedCost* exchange) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  const double e = static_cast<double>(dtype_size(p.dtype));
  const int64_t local = (p.seq + ranks - 1) / ranks;  // the largest shard
  const Sizes own(p, local, p.heads_q, p.heads_kv);
  MemoryEstimate m;
  double workspace = 0;

  if (inputs.phase == Phase::kDecode) {
    const int64_t cache = (p.seq + inputs.q_len + ranks - 1) / ranks;  // prompt + this step
    const Sizes c(p, cache, p.heads_q, p.heads_kv);
    const Sizes rows(p, inputs.q_len, p.heads_q, p.heads_kv);
    m.shards = static_cast<int64_t>(2 * c.kv * e + 2 * rows.q * e + rows.lse * 4);
    workspace = rows.q * 4 + rows.lse * 4 +
                scratch_bytes(topo, p, inputs.q_len, cache, p.heads_q, p.heads_kv, false);
    if (candidate.scheme == SchemeKind::kRing)
      workspace += 2 * 2 * c.kv * e;  // blocks held x2
    else
      workspace += rows.q * 4 + rows.lse * 4;  // the combine's buffers
    m.workspace = static_cast<int64_t>(workspace);
    return m;
  }

  // A forward-only phase runs a forward-only plan (PlanConfig::backward = false): the buffers
  // only backward uses are left out of the workspace.
  const bool backward = inputs.phase == Phase::kTrain && inputs.backward;
  const double bwd = backward ? 1 : 0;
  // Q, K, V, O, LSE; training adds dO, dQ, dK, dV.
  m.shards = static_cast<int64_t>((2 * own.q + 2 * own.kv) * e + own.lse * 4 +
                                  (backward ? (2 * own.q + 2 * own.kv) * e : 0));
  switch (candidate.scheme) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag:
      workspace = ring_workspace(topo, p, local, p.heads_q, p.heads_kv, ranks, backward);
      break;
    case SchemeKind::kLightSeq: {
      const bool moves_kv = ranks > 1, helpers = ranks > 2;
      const double q_recv = backward ? 2 * own.q * e + 2 * own.lse * 4 : own.q * e;
      workspace = (moves_kv ? 2 * 2 * own.kv * e : 0) +        // K, V receive x2
                  (helpers ? 2 * q_recv : 0) +                 // Q (+ dO, LSE, delta) x2
                  own.q * 4 + bwd * own.lse * 4 +              // O/dQ, delta
                  (helpers ? 2 * (own.q + own.lse) * 4 : 0) +  // partials
                  bwd * 4 * own.kv * 4 +                       // dK, dV share, total
                  bwd * (moves_kv ? std::max(2 * own.kv * e, helpers ? own.q * e : 0.0) : 0) +
                  bwd * ((moves_kv ? 2 * own.kv * e : 0) + (helpers ? own.q * e : 0)) +  // in
                  scratch_bytes(topo, p, local, local, p.heads_q, p.heads_kv, backward);
      break;
    }
    case SchemeKind::kTree: {
      const double n = ranks;
      const Sizes whole(p, local * ranks, p.heads_q, p.heads_kv);
      const double pack = 2 * own.lse * 4 + 2 * own.q * e;
      workspace = n * own.q * e + n * own.q * 4 + n * own.lse * 4 +
                  bwd * (pack + n * pack + own.q * 4 + 2 * own.kv * 4) +
                  scratch_bytes(topo, p, local, local, p.heads_q, p.heads_kv, backward) +
                  whole.lse * 4 + (whole.q + whole.lse) * 4;
      if (topo.nodes > 1 && topo.ranks_per_node > 1) {
        workspace += (whole.q + whole.lse) * 4 / topo.ranks_per_node;  // the node slice
      }
      break;
    }
    case SchemeKind::kUlysses:
    case SchemeKind::kHybrid: {
      if (exchange == nullptr) break;
      const bool hybrid = candidate.scheme == SchemeKind::kHybrid;
      const int64_t heads_seq = hybrid ? p.seq / candidate.ring_degree : p.seq;  // S_h
      const Sizes h(p, heads_seq, exchange->heads_q_max, exchange->heads_kv_max);
      // HeadExchange: send, receive (of the forward all-to-alls alone when forward-only); Q, K,
      // V heads, dO heads (backward); O heads (hybrid) or delta (Ulysses, backward); LSE; our
      // tokens' dK, dV in fp32 (backward).
      const int64_t buffers =
          backward ? exchange->exchange_send_max + exchange->exchange_recv_max
                   : exchange->exchange_send_forward_max + exchange->exchange_recv_forward_max;
      workspace = static_cast<double>(buffers) + (h.q + 2 * h.kv) * e + bwd * h.q * e +
                  (hybrid ? h.q * e : bwd * h.lse * 4) + h.lse * 4 + bwd * 2 * own.kv * 4;
      if (hybrid) {  // dQ, dK, dV heads (storage, backward) and the ring's workspace on the slice
        workspace += bwd * (h.q + 2 * h.kv) * e +
                     ring_workspace(topo, p, heads_seq, exchange->heads_q_max,
                                    exchange->heads_kv_max, candidate.ring_degree, backward);
      } else {  // O/dQ (fp32); dK, dV of our heads (fp32) and delta of our tokens (backward);
                // kernel scratch
        workspace += h.q * 4 + bwd * (2 * h.kv * 4 + own.lse * 4) +
                     scratch_bytes(topo, p, p.seq, p.seq, exchange->heads_q_max,
                                   exchange->heads_kv_max, backward);
      }
      break;
    }
  }
  m.workspace = static_cast<int64_t>(workspace);
  return m;
}

}  // namespace seqpar
