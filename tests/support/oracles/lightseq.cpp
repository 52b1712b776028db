// The LightSeq oracle (tests/support/comm_oracles.hpp), per step t >= 1 of its pairing, as
// runtime/schemes/lightseq.cpp's comment states it.
#include "oracle_parts.hpp"
#include "partition/layout.hpp"
#include "runtime/lightseq_pairing.hpp"

namespace seqpar::oracle {
namespace {

struct ShardBytes {
  int64_t q, q_f32, kv, lse;
};

ShardBytes shard_bytes(const AttentionProblem& p, int ranks, int rank) {
  const int64_t local = BalancedSplit{p.seq, ranks}.size(rank);
  const int64_t q_elems = p.batch * local * p.heads_q * p.head_dim;
  return {q_elems * e_of(p), q_elems * 4, p.batch * local * p.heads_kv * p.head_dim * e_of(p),
          p.batch * p.heads_q * local * 4};
}

CommVolume lightseq_forward(const AttentionProblem& p, int ranks, int rank) {
  const LightSeqPairing pairs = lightseq_pairing(ranks);
  const ShardBytes own = shard_bytes(p, ranks, rank);
  CommVolume v;
  for (int t = 1; t < static_cast<int>(pairs.steps.size()); ++t) {
    const LightSeqRankStep& s = pairs.at(t, rank);
    ++v[CommOp::kExchange];  // the step's inputs
    if (s.kv_to >= 0) v.bytes_sent += 2 * own.kv;
    if (s.q_to >= 0) {  // our queries out; the helper's (O, LSE) back in a results exchange
      v.bytes_sent += own.q;
      ++v[CommOp::kExchange];
    }
    if (s.q_from >= 0) {  // helping: the (O, LSE) of the helped rank's queries back in fp32
      const ShardBytes helped = shard_bytes(p, ranks, s.q_from);
      v.bytes_sent += helped.q_f32 + helped.lse;
      ++v[CommOp::kExchange];
    }
  }
  return v;
}

CommVolume lightseq_backward(const AttentionProblem& p, int ranks, int rank) {
  const LightSeqPairing pairs = lightseq_pairing(ranks);
  const ShardBytes own = shard_bytes(p, ranks, rank);
  CommVolume v;
  // Every step t >= 1 moves inputs and results for every rank (a rank either sends or receives
  // K/V, so it also receives or sends a dK/dV share).
  for (int t = 1; t < static_cast<int>(pairs.steps.size()); ++t) {
    const LightSeqRankStep& s = pairs.at(t, rank);
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

}  // namespace

extern constinit const SchemeOracle kLightSeqSchemeOracle{
    [](const Shape& s, int r) { return lightseq_forward(s.problem, s.ranks, r); },
    [](const Shape& s, int r) { return lightseq_backward(s.problem, s.ranks, r); }};
}  // namespace seqpar::oracle
