#pragma once
// Problem cases shared by the threads and mpirun tests of the ring family: every scheme, causal
// and full, GQA ratios, odd chunk sizes (tiles straddle zigzag chunks), fp32 and bf16.
#include <functional>
#include <string>
#include <vector>

#include "comm_oracles.hpp"
#include "harness/training_step.hpp"
#include "runtime/schedule.hpp"

namespace seqpar::testing {

struct SchemeCase {
  SchemeKind scheme;
  MaskKind mask;
  int64_t heads_q, heads_kv, head_dim;
  int64_t tokens_per_rank;  // seq = P * tokens_per_rank (even for zigzag: two chunks)
  int64_t batch;
  DType dtype;
  // seq = P * tokens_per_rank + extra_tokens: S % P != 0 gives contiguous layouts shards that
  // differ by a token (hybrid: + 2R * extra_tokens, uneven inside the groups).
  int64_t extra_tokens = 0;
  std::string name() const;
};

std::vector<SchemeCase> scheme_cases();

// A StepConfig for `c` on `ranks` ranks: forward + backward, --check, and a seed of its own
// (from the case and the rank count), so every case runs on different inputs.
StepConfig options_for(const SchemeCase& c, int ranks);

// Every rank's calls and bytes in `pass` of `scheme`'s schedule for `shape` (its ranks, hybrid's
// U, tree's ranks per node): what Plan::expected_forward_comm() / expected_backward_comm() say,
// without a communicator. Empty when the plan would refuse the shape.
std::vector<CommVolume> schedule_comm(SchemeKind scheme, const oracle::Shape& shape, Pass pass);

// Rank r's forward / backward volume, from the schedule or from the oracle.
using RankVolume = std::function<CommVolume(int rank)>;
// Calls check(forward, backward) twice, traced: once with `scheme`'s schedule for `shape`, once
// with its closed-form oracle; a hand count asserted inside holds both to itself.
void for_schedule_and_oracle(
    SchemeKind scheme, const oracle::Shape& shape,
    const std::function<void(const RankVolume& forward, const RankVolume& backward)>& check);

// PlanConfig::ulysses_degree for `scheme` on `ranks` ranks in the tests that run every scheme:
// for a scheme that takes one (the hybrid), the smallest candidate U with U and P / U both above
// 1, a true grid, where there is one; else 0 (the scheme's default).
int grid_ulysses_degree(SchemeKind scheme, int ranks);

// Runs `body` on `ranks` threads (a 20 s communication timeout) and returns every rank's status;
// no rank aborts the others, so each reports what it saw.
std::vector<Status> statuses_on_threads(int ranks,
                                        const std::function<Status(Communicator&)>& body);

}  // namespace seqpar::testing
