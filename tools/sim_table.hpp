#pragma once
// seqpar-sim's results: for one problem on one topology, the cost model's candidates reduced to
// one row per scheme (the hybrid's best U x R), with the predicted step time, TFLOP/s per GPU and
// efficiency against the ideal (single-GPU time / P), and the writers of those rows (text table,
// CSV, JSON). Every figure here is a model prediction (model/cost_model.hpp), never a
// measurement.
#include <cstdint>
#include <string>
#include <vector>

#include "model/cost_model.hpp"

namespace seqpar {

struct SimRow {
  // problem
  std::string problem;  // "S=131072 Hq=32 Hkv=8 D=128 causal fwd+bwd"
  int64_t seq = 0, batch = 1, heads_q = 0, heads_kv = 0, head_dim = 0;
  // topology
  int gpus = 0, nodes = 0, gpus_per_node = 0;
  // the scheme's best candidate
  std::string scheme;     // "ring", ..., "hybrid"
  std::string candidate;  // "hybrid 8x2"
  int ulysses_degree = 1, ring_degree = 1;
  bool feasible = false;
  std::string excluded_reason;
  bool chosen = false;  // what --scheme auto picks for this problem and topology
  double seconds = 0;   // predicted step time (fwd+bwd for train with backward, else fwd)
  double compute_seconds = 0, comm_seconds = 0;
  double tflops_per_gpu =
      0;  // useful FLOPs (docs/reference_figures.md's convention) / seconds / gpus / 1e12
  double efficiency = 0;  // (single-GPU seconds / gpus) / seconds
  int64_t bytes_sent_per_rank = 0, memory_bytes_per_rank = 0;
};

// "S=131072 Hq=32 Hkv=8 D=128 causal fwd+bwd" (and "B=2 " first when batch > 1).
std::string problem_label(const ModelInputs& inputs);

// The model's time for the whole problem on one GPU of the same device and rate (the cheapest
// candidate's prediction with one rank, memory not applied): the ideal's numerator.
double single_gpu_seconds(const ModelInputs& inputs);

// One row per scheme, in first-appearance order of `costs`: the fastest feasible candidate of
// that scheme, else its first candidate with the reason it was excluded. `chosen` marks the
// scheme of cheapest_feasible(costs).
std::vector<SimRow> rows_per_scheme(const ModelInputs& inputs,
                                    const std::vector<CandidateCost>& costs, double single_gpu_s);

// Fixed-width table, one line per row.
std::string sim_text_table(const std::vector<SimRow>& rows);
// Header line and one line per row; fields with commas or quotes are quoted.
std::string sim_csv(const std::vector<SimRow>& rows);
// {"note": "...model predictions...", "topology": ..., "rate": ..., "rows": [...]}.
std::string sim_json(const std::vector<SimRow>& rows, const Topology& topology,
                     const ComputeRate& rate, const std::string& note);

// JSON string literal of `text` (quotes included).
std::string json_string(const std::string& text);

}  // namespace seqpar
