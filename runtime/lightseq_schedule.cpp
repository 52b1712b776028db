// LightSeq's balanced causal schedule and its communication formula (see lightseq_schedule.hpp).
#include "runtime/lightseq_schedule.hpp"

#include <algorithm>

namespace seqpar {
namespace {

int lightseq_steps(int ranks) { return ranks / 2 + 1; }

// Bytes of `rank`'s shards: one of Q, dO in the storage dtype and in fp32; one of K, V; an fp32
// (B, Hq, S_local) LSE or delta. Contiguous shards may differ by a token (S % P != 0).
struct ShardBytes {
  int64_t q, q_f32, kv, lse;
};

ShardBytes shard_bytes(const AttentionProblem& p, int ranks, int rank) {
  const int64_t local = BalancedSplit{p.seq, ranks}.size(rank);
  const int64_t s = static_cast<int64_t>(dtype_size(p.dtype));
  const int64_t f32 = static_cast<int64_t>(sizeof(float));
  const int64_t q_elems = p.batch * local * p.heads_q * p.head_dim;
  return {q_elems * s, q_elems * f32, p.batch * local * p.heads_kv * p.head_dim * s,
          p.batch * p.heads_q * local * f32};
}

// Rank r's part of step t (the rule of lightseq_schedule.hpp).
LightSeqRankStep rank_step(int ranks, int t, int r) {
  LightSeqRankStep s;
  const bool helpers = t > 0 && t < ranks - t;  // ring step P - t folds into this one
  if (r >= t) {  // ring's pair: own queries against the K/V of rank r - t
    s.q_block = r;
    s.kv_block = r - t;
    if (t > 0) s.kv_from = r - t;
  }
  if (t > 0 && r + t < ranks) s.kv_to = r + t;
  if (helpers && r < t) {  // no causal work left: help rank P - t + r with own K/V
    s.q_block = ranks - t + r;
    s.kv_block = r;
    s.q_from = ranks - t + r;
  }
  if (helpers && r >= ranks - t) s.q_to = r - (ranks - t);
  return s;
}

}  // namespace

LightSeqSchedule lightseq_schedule(int ranks) {
  LightSeqSchedule schedule;
  schedule.ranks = ranks;
  const int steps = lightseq_steps(ranks);
  schedule.steps.resize(static_cast<size_t>(steps));
  for (int t = 0; t < steps; ++t) {
    for (int r = 0; r < ranks; ++r)
      schedule.steps[static_cast<size_t>(t)].push_back(rank_step(ranks, t, r));
  }
  return schedule;
}

CommVolume lightseq_forward_comm(const AttentionProblem& p, int ranks, int rank) {
  const ShardBytes own = shard_bytes(p, ranks, rank);
  CommVolume v;
  for (int t = 1; t < lightseq_steps(ranks); ++t) {
    const LightSeqRankStep s = rank_step(ranks, t, rank);
    ++v[CommOp::kExchange];  // the step's inputs
    if (s.kv_to >= 0) v.bytes_sent += 2 * own.kv;
    if (s.q_to >= 0) {  // our queries out; the helper's (O, LSE) back in a results exchange
      v.bytes_sent += own.q;
      ++v[CommOp::kExchange];
    }
    if (s.q_from >= 0) {  // helping: the (O, LSE) of the helped rank's queries go back in fp32
      const ShardBytes helped = shard_bytes(p, ranks, s.q_from);
      v.bytes_sent += helped.q_f32 + helped.lse;
      ++v[CommOp::kExchange];
    }
  }
  return v;
}

CommVolume lightseq_backward_comm(const AttentionProblem& p, int ranks, int rank) {
  const ShardBytes own = shard_bytes(p, ranks, rank);
  CommVolume v;
  // Every step t >= 1 moves inputs and results for every rank (a rank either sends or receives
  // K/V, so it also receives or sends a dK/dV share).
  for (int t = 1; t < lightseq_steps(ranks); ++t) {
    const LightSeqRankStep s = rank_step(ranks, t, rank);
    v[CommOp::kExchange] += 2;
    if (s.kv_to >= 0) v.bytes_sent += 2 * own.kv;
    if (s.q_to >= 0) v.bytes_sent += 2 * own.q + 2 * own.lse;  // Q, dO, LSE, delta
    if (s.q_from >= 0) {
      v.bytes_sent += shard_bytes(p, ranks, s.q_from).q;  // the helped rank's dQ share
    } else if (s.kv_from >= 0) {
      v.bytes_sent += 2 * shard_bytes(p, ranks, s.kv_from).kv;  // dK, dV share of its block
    }
  }
  return v;
}

}  // namespace seqpar
