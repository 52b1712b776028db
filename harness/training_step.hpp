#pragma once
// The step harness: one rank's part of a checked, timed step, shared by seqpar-run, seqpar-bench
// and the tests. A training step makes the plan, fills the inputs from (seed, global index),
// times warmup + iters steps (forward, and backward when asked), measures communication (each
// rank against its own scheme's schedule: ranks may send different amounts), and checks against
// the fp64 reference. Collective; every rank returns the same report.
#include <cstdint>
#include <optional>

#include "comm/communicator.hpp"
#include "harness/reference_check.hpp"
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"

namespace seqpar {

// What a step runs.
struct StepConfig {
  PlanConfig plan;              // problem, scheme, U, ranks per node, device (train, prefill)
  Phase phase = Phase::kTrain;  // train, prefill (forward only) or decode (harness/decode_step)
  bool backward = false;        // train: forward + backward (the plan's backward buffers too)
  DecoderKind decoder = DecoderKind::kTree;  // decode
  int64_t q_len = 1;                         // decode: new query tokens per step
  int iters = 3;
  int warmup = 1;
  uint64_t seed = 1234;
  bool check = false;      // against the fp64 reference
  double timeout_s = 0.0;  // 0: the communicator's default (SEQPAR_TIMEOUT_S or 300 s)
};

struct StepReport {
  AttentionProblem problem;  // softmax scale resolved
  int ranks = 0;
  // The plan's U x R grid (Plan::layout(): U as the hybrid resolved it, ulysses_degree 0 included);
  // 1 x P for every other scheme.
  int ulysses_degree = 1;  // U: ranks per Ulysses group
  int ring_size = 1;       // R = P / U: groups in the ring
  int64_t local_seq = 0;
  size_t workspace_bytes = 0;
  double time_ms = 0;      // median over iterations of the slowest rank's step
  double time_ms_min = 0;  // fastest iteration (slowest rank)
  double tflops = 0;       // whole-problem FLOPs (docs/reference_figures.md's convention) / time_ms
  CommVolume measured_comm;         // per step, the largest over ranks (calls per op, bytes)
  int64_t bytes_sent_min_rank = 0;  // per step, the smallest over ranks
  CommVolume expected_comm;         // the schedule's (runtime/schedule.hpp), largest over ranks
  bool comm_matches_formula = false;
  std::optional<CheckErrors> errors;  // with --check

  bool passed() const { return comm_matches_formula && (!errors || errors->passed); }
};

StatusOr<StepReport> run_training_step(const StepConfig& config, Communicator& comm);

}  // namespace seqpar
