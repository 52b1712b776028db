// LightSeq's balanced causal schedule and its communication formula (see lightseq_schedule.hpp).
#include "runtime/lightseq_schedule.hpp"

#include <algorithm>

namespace seqpar {
namespace {

int lightseq_steps(int ranks) { return ranks / 2 + 1; }
int helper_steps(int ranks) { return (ranks - 1) / 2; }  // steps t >= 1 with t < P - t

// Bytes of one of Q, dO in the storage dtype and in fp32; of one of K, V; of an fp32
// (B, Hq, S_local) LSE or delta.
struct ShardBytes {
  int64_t q, q_f32, kv, lse;
};

ShardBytes shard_bytes(const AttentionProblem& p, int ranks) {
  const int64_t local = p.seq / ranks;
  const int64_t s = static_cast<int64_t>(dtype_size(p.dtype));
  const int64_t f32 = static_cast<int64_t>(sizeof(float));
  const int64_t q_elems = p.batch * local * p.heads_q * p.head_dim;
  return {q_elems * s, q_elems * f32, p.batch * local * p.heads_kv * p.head_dim * s,
          p.batch * p.heads_q * local * f32};
}

// How many of the steps t >= 1 `rank` spends in each role.
struct RoleCounts {
  int64_t kv_sent;      // its K/V go to rank + t
  int64_t kv_received;  // it computes (rank, rank - t) on arriving K/V
  int64_t helped;       // its queries go to a helper
  int64_t helping;      // it computes a late rank's queries against its own K/V
};

RoleCounts role_counts(int ranks, int rank) {
  const int last = lightseq_steps(ranks) - 1;
  const int helpers = helper_steps(ranks);
  return {std::min(ranks - 1 - rank, last), std::min(rank, last),
          std::max(0, helpers - (ranks - 1 - rank)), std::max(0, helpers - rank)};
}

}  // namespace

LightSeqSchedule lightseq_schedule(int ranks) {
  LightSeqSchedule schedule;
  schedule.ranks = ranks;
  const int steps = lightseq_steps(ranks);
  schedule.steps.assign(static_cast<size_t>(steps),
                        std::vector<LightSeqRankStep>(static_cast<size_t>(ranks)));
  for (int t = 0; t < steps; ++t) {
    const bool helpers = t > 0 && t < ranks - t;  // ring step P - t folds into this one
    for (int r = 0; r < ranks; ++r) {
      LightSeqRankStep& s = schedule.steps[static_cast<size_t>(t)][static_cast<size_t>(r)];
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
    }
  }
  return schedule;
}

CommVolume lightseq_forward_comm(const AttentionProblem& p, int ranks, int rank) {
  const ShardBytes b = shard_bytes(p, ranks);
  const RoleCounts n = role_counts(ranks, rank);
  CommVolume v;
  // One inputs exchange per step t >= 1, and one results exchange when helping or helped.
  v[CommOp::kExchange] = lightseq_steps(ranks) - 1 + n.helped + n.helping;
  v.bytes_sent = n.kv_sent * 2 * b.kv + n.helped * b.q + n.helping * (b.q_f32 + b.lse);
  return v;
}

CommVolume lightseq_backward_comm(const AttentionProblem& p, int ranks, int rank) {
  const ShardBytes b = shard_bytes(p, ranks);
  const RoleCounts n = role_counts(ranks, rank);
  CommVolume v;
  // Every step t >= 1 moves inputs and results for every rank (a rank either sends or receives
  // K/V, so it also receives or sends a dK/dV share).
  v[CommOp::kExchange] = 2 * (lightseq_steps(ranks) - 1);
  v.bytes_sent = n.kv_sent * 2 * b.kv + n.helped * (2 * b.q + 2 * b.lse) +
                 n.kv_received * 2 * b.kv + n.helping * b.q;
  return v;
}

}  // namespace seqpar
