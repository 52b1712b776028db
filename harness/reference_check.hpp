#pragma once
// Checks a distributed step against the fp64 single-device reference of the whole problem.
// The reference is exact per row, so each rank computes only its share: forward for its own
// query rows against all keys, dQ for its rows, and dK/dV for its own keys against all queries
// (after the ranks exchange the reference LSE and delta of every row). Errors are relative L2
// norms ||x - ref|| / ||ref|| over the whole problem, summed across ranks.
#include "comm/communicator.hpp"
#include "harness/test_data.hpp"

namespace seqpar {

struct CheckErrors {
  double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
  double tolerance = 0;
  bool backward = false;
  bool passed = false;
};

// fp32: 1e-5, bf16: 2e-2, fp16: 5e-3 (relative L2).
double check_tolerance(DType dtype);

// Collective over `comm`. `p` must have its softmax scale resolved (Plan::problem()).
StatusOr<CheckErrors> check_against_reference(const AttentionProblem& p, const Layout& layout,
                                              Communicator& comm, uint64_t seed,
                                              const RankTensors& results, bool backward);

}  // namespace seqpar
