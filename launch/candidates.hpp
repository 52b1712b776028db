#pragma once
// The candidate set of the launcher's choice: every scheme x Ulysses degree U x ring degree R x
// rank placement the runtime could run on the topology's ranks, and the runtime's own verdict on
// each (a candidate the runtime would refuse carries the runtime's reason).
//   train, prefill  ring, striped, zigzag (U = 1, R = P), lightseq, ulysses (U = P, R = 1),
//                   hybrid U x R for every divisor U of P, tree
//   decode          tree, ring (the ring-decode baseline)
// The hybrid's ends are candidates of their own: U = 1 is a zigzag ring behind two local-copy
// all-to-alls, U = P is Ulysses over the contiguous layout that sends O instead of delta in
// backward (runtime/hybrid_attention.hpp), so each costs a little more than zigzag / ulysses.
#include <string>
#include <vector>

#include "launch/cost_model.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

std::vector<Candidate> enumerate_candidates(const ModelInputs& inputs);

// The PlanConfig the runtime would get for `candidate` (ranks_per_node from the topology when it
// spans several nodes, so tree's combine is hierarchical; hybrid's U given explicitly; forward-only
// for a phase without backward).
PlanConfig plan_config_for(const ModelInputs& inputs, const Candidate& candidate);

// "" when the runtime would accept the candidate, else the runtime's reason (validate_problem,
// the head split, the scheme's own rules), without the source location.
std::string runtime_exclusion(const ModelInputs& inputs, const Candidate& candidate);

}  // namespace seqpar
