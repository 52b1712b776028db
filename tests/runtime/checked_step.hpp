#pragma once
// One checked training step (forward + backward against the fp64 reference) with every
// assertion the scheme tests share: per rank, the report's errors of out, LSE, dQ, dK and dV
// within the dtype's tolerance, the check passed, and the rank's communication equal to its own
// formula. Schemes add their own assertions on the returned reports.
#include <vector>

#include "comm/communicator.hpp"
#include "harness/training_step.hpp"

namespace seqpar::testing {

// On `ranks` threads (the threads backend, on options.plan.device's memory). Call it inside
// ASSERT_NO_FATAL_FAILURE: a failed step
// is a fatal failure. `reports` (optional) receives every rank's report, in rank order.
void expect_checked_step_on_threads(const StepConfig& options, int ranks,
                                    std::vector<StepReport>* reports = nullptr);

// This process's rank of `comm` (under mpirun; the MPI test main combines the ranks' results).
void expect_checked_step(const StepConfig& options, Communicator& comm,
                         StepReport* report = nullptr);

}  // namespace seqpar::testing
