#pragma once
// seqpar-run's output: one JSON object (--json) or a short readable table; with --scheme auto
// (or --explain) also the cost model's choice and its predicted time next to the measured one.
#include <string>

#include "harness/training_step.hpp"
#include "tools/auto_scheme.hpp"
#include "tools/run_options.hpp"

namespace seqpar {

// `planned`: the cost model's evaluation for this run (--scheme auto or --explain), or null.
std::string report_json(const RunOptions& options, const StepReport& report,
                        const AutoScheme* planned = nullptr);
std::string report_table(const RunOptions& options, const StepReport& report,
                         const AutoScheme* planned = nullptr);

// seqpar-run --dry-run: the choice without a run. JSON: one object {"dry_run": true, "scheme",
// "candidate", "ulysses", "ring", "predicted_ms", "problem" ..., "model": {...}}; else a line,
// or the --explain table.
std::string dry_run_report(const RunOptions& options, const AutoScheme& planned);

}  // namespace seqpar
