#pragma once
// seqpar-run's options (Boost.Program_options), with defaults and validation of the CLI itself.
// Problem rules (divisibility, head dims) are checked by Plan::create on every rank. --scheme auto
// (the default) leaves plan.scheme to the launcher's choice (tools/auto_scheme.hpp).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "harness/training_step.hpp"
#include "model/topology.hpp"

namespace seqpar {

enum class BackendKind : int { kThreads = 0, kMpi, kNccl };
const char* backend_name(BackendKind backend);  // "threads", "mpi", "nccl"
StatusOr<BackendKind> parse_backend(std::string_view name);

// The step every rank runs (StepConfig: the plan's config, phase, decoder, iterations, seed,
// check, timeout) and the CLI's own options.
struct RunOptions : StepConfig {
  BackendKind backend = BackendKind::kThreads;
  int ranks = 4;  // threads backend only (1..1024); mpi/nccl take the size of MPI_COMM_WORLD
  bool ranks_given = false;  // --ranks on the command line
  bool json = false;

  // The launcher: --scheme auto and what the cost model reads.
  bool scheme_auto = false;   // --scheme auto (the CLI default): the cost model picks scheme, U x R
  bool dry_run = false;       // --dry-run: choose (and --explain) without running
  bool explain = false;       // --explain: print every candidate the cost model weighed
  std::string topology_file;  // --topology FILE (docs/topology.md)
  TopologyOverrides topology;  // --nodes, --gpus-per-node, --intra, --inter
  std::string rate_file;       // --rate-file FILE: a saved ComputeRate (model/calibration.hpp)
  bool recalibrate = false;    // --recalibrate: measure the host kernel again, not the cache
  bool measure_links = false;  // --measure-links: time the active backend's links (under mpirun)
  // Whether any topology option was given (else: discovered at run time, default on a dry run).
  bool topology_given() const {
    return !topology_file.empty() || topology.nodes > 0 || topology.gpus_per_node > 0 ||
           !topology.intra.empty() || !topology.inter.empty();
  }
};

// Parses argv. Returns kOk with *exit_now = true after printing --help.
StatusOr<RunOptions> parse_run_options(int argc, char** argv, bool* exit_now);

}  // namespace seqpar
