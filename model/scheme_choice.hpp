#pragma once
// --scheme auto: the cheapest feasible candidate of the cost model (model/cost_model.hpp), and
// how seqpar-run shows it: the --explain table (every candidate with its predicted time, bytes,
// memory, or why it was excluded) and the JSON fields of the choice.
#include <string>
#include <vector>

#include "model/cost_model.hpp"

namespace seqpar {

struct SchemeChoice {
  std::vector<CandidateCost> candidates;  // every candidate, in enumeration order
  int chosen = -1;                        // index of the cheapest feasible one

  const CandidateCost& best() const { return candidates[static_cast<size_t>(chosen)]; }
};

// Index of the cheapest feasible candidate (the earliest on ties: deterministic, so every rank
// given the same inputs picks the same one); -1 when none is feasible.
int cheapest_feasible(const std::vector<CandidateCost>& candidates);

// Evaluates every candidate and picks. kInvalidArgument listing each candidate's reason when
// none is feasible.
StatusOr<SchemeChoice> choose_scheme(const ModelInputs& inputs);

// The PlanConfig fields of a training or prefill choice: scheme and hybrid's U. A decoding
// choice (candidate.decode) names a DecodeConfig's decoder instead: passing one aborts.
void apply_choice(const CandidateCost& chosen, PlanConfig& config);

// Human table: the inputs (topology, rate, problem), then one line per candidate, the chosen
// one marked with '*'.
std::string explain_table(const ModelInputs& inputs, const SchemeChoice& choice);

// JSON object of one candidate: {"candidate": "hybrid 8x2", "scheme": "hybrid", "ulysses": 8,
// "ring": 2, "placement": ..., "feasible": ..., "excluded": ..., "predicted_ms": ..., ...}.
std::string candidate_json(const CandidateCost& cost);
// JSON object of the choice: {"chosen": {...}, "candidates": [...], "rate_source": ...,
// "topology_source": ...}.
std::string choice_json(const ModelInputs& inputs, const SchemeChoice& choice);

}  // namespace seqpar
