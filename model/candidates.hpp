#pragma once
// The candidate set of the launcher's choice, from the registry (runtime/scheme_registry.hpp):
//   train, prefill  every scheme x each Ulysses degree U its descriptor offers on P ranks
//                   (ring family, lightseq, tree: U = 1; ulysses: U = P; hybrid: every divisor),
//                   in registration order
//   decode          every decoder (tree, ring)
// and the runtime's own verdict on each (a candidate the runtime would refuse carries the
// runtime's reason). The hybrid's ends are candidates of their own: U = 1 is a zigzag ring behind
// two local-copy all-to-alls, U = P is Ulysses over the contiguous layout that sends O instead of
// delta in backward (runtime/schemes/hybrid.cpp), so each costs a little more than zigzag /
// ulysses.
#include <string>
#include <vector>

#include "model/cost_model.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

std::vector<Candidate> enumerate_candidates(const ModelInputs& inputs);

// The PlanConfig the runtime would get for `candidate` (ranks_per_node from the topology when it
// spans several nodes, so tree's combine is hierarchical; hybrid's U given explicitly; forward-only
// for a phase without backward).
PlanConfig plan_config_for(const ModelInputs& inputs, const Candidate& candidate);
// The DecodeConfig of a decoding candidate: the cache of problem.seq prompt tokens, one step of
// q_len tokens.
DecodeConfig decode_config_for(const ModelInputs& inputs, const Candidate& candidate);

// "" when the runtime would accept the candidate, else the runtime's reason (validate_problem, or
// DecodePlan::validate), without the source location.
std::string runtime_exclusion(const ModelInputs& inputs, const Candidate& candidate);

}  // namespace seqpar
