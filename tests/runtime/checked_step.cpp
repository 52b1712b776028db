// The checked training step of the scheme tests (see checked_step.hpp).
#include "checked_step.hpp"

#include <gtest/gtest.h>

#include "comm/threads/threads_communicator.hpp"

namespace seqpar::testing {
namespace {

// Every assertion on one rank's report.
void expect_report_passes(const StepReport& rep, int rank) {
  ASSERT_TRUE(rep.errors.has_value()) << "rank " << rank << " ran no check";
  const CheckErrors& e = *rep.errors;
  EXPECT_LE(e.out, e.tolerance) << "rank " << rank;
  EXPECT_LE(e.lse, e.tolerance) << "rank " << rank;
  EXPECT_LE(e.dq, e.tolerance) << "rank " << rank;
  EXPECT_LE(e.dk, e.tolerance) << "rank " << rank;
  EXPECT_LE(e.dv, e.tolerance) << "rank " << rank;
  EXPECT_TRUE(e.passed) << "rank " << rank;
  EXPECT_TRUE(rep.comm_matches_formula)
      << "rank " << rank << ": largest rank sent " << rep.measured_comm.bytes_sent
      << " bytes; formula's largest " << rep.expected_comm.bytes_sent;
}

}  // namespace

void expect_checked_step_on_threads(const StepConfig& options, int ranks,
                                    std::vector<StepReport>* reports) {
  std::vector<StepReport> all(static_cast<size_t>(ranks));
  const auto body = [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(all[static_cast<size_t>(comm.rank())],
                            run_training_step(options, comm));
    return Status::ok();
  };
  const Status status = run_threads(ranks, body, options.plan.device);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < ranks; ++r) {
    ASSERT_NO_FATAL_FAILURE(expect_report_passes(all[static_cast<size_t>(r)], r));
  }
  if (reports != nullptr) *reports = std::move(all);
}

void expect_checked_step(const StepConfig& options, Communicator& comm, StepReport* report) {
  StatusOr<StepReport> rep = run_training_step(options, comm);
  ASSERT_TRUE(rep.is_ok()) << rep.status().to_string();
  ASSERT_NO_FATAL_FAILURE(expect_report_passes(rep.value(), comm.rank()));
  if (report != nullptr) *report = std::move(rep).value();
}

}  // namespace seqpar::testing
