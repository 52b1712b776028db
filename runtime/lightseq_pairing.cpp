// LightSeq's balanced causal pairing (see lightseq_pairing.hpp).
#include "runtime/lightseq_pairing.hpp"

namespace seqpar {
namespace {

int lightseq_steps(int ranks) { return ranks / 2 + 1; }

// Rank r's part of step t (the rule of lightseq_pairing.hpp).
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

LightSeqPairing lightseq_pairing(int ranks) {
  LightSeqPairing schedule;
  schedule.ranks = ranks;
  const int steps = lightseq_steps(ranks);
  schedule.steps.resize(static_cast<size_t>(steps));
  for (int t = 0; t < steps; ++t) {
    for (int r = 0; r < ranks; ++r)
      schedule.steps[static_cast<size_t>(t)].push_back(rank_step(ranks, t, r));
  }
  return schedule;
}

}  // namespace seqpar
