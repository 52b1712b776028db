#pragma once
// One rank's part of seqpar-run: make the plan, fill the inputs, time warmup + iters steps
// (forward, and backward with --backward), measure communication (each rank against its own
// formula: ranks may send different amounts), and check against the reference with --check.
// Collective; every rank returns the same report.
#include <cstdint>
#include <optional>

#include "comm/communicator.hpp"
#include "launch/reference_check.hpp"
#include "launch/run_options.hpp"
#include "runtime/comm_formula.hpp"

namespace seqpar {

struct StepReport {
  AttentionProblem problem;  // softmax scale resolved
  int ranks = 0;
  // The plan's U x R grid (Plan::layout(): U as the hybrid resolved it, ulysses_degree 0 included);
  // 1 x P for every other scheme.
  int ulysses_degree = 1;  // U: ranks per Ulysses group
  int ring_size = 1;       // R = P / U: groups in the ring
  int64_t local_seq = 0;
  size_t workspace_bytes = 0;
  double time_ms = 0;               // median over iterations of the slowest rank's step
  double time_ms_min = 0;           // fastest iteration (slowest rank)
  double tflops = 0;                // whole-problem FLOPs (ANCHORS.md convention) / time_ms
  CommVolume measured_comm;         // per step, the largest over ranks (calls per op, bytes)
  int64_t bytes_sent_min_rank = 0;  // per step, the smallest over ranks
  CommVolume expected_comm;         // the formula (runtime/comm_formula.hpp), largest over ranks
  bool comm_matches_formula = false;
  std::optional<CheckErrors> errors;  // with --check

  bool passed() const { return comm_matches_formula && (!errors || errors->passed); }
};

StatusOr<StepReport> run_training_step(const RunOptions& options, Communicator& comm);

}  // namespace seqpar
