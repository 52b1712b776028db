#pragma once
// seqpar-run's output: one JSON object (--json) or a short readable table.
#include <string>

#include "launch/run_options.hpp"
#include "launch/training_step.hpp"

namespace seqpar {

std::string report_json(const RunOptions& options, const StepReport& report);
std::string report_table(const RunOptions& options, const StepReport& report);

}  // namespace seqpar
