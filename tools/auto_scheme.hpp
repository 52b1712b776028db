#pragma once
// seqpar-run's --scheme auto: the inputs of the cost model for this run (the topology from
// --topology / --nodes ... or discovered; the compute rate from --rate-file, the host kernel's
// cached or measured rate, or the documented H100 figures for a GPU topology) and the choice.
// Under MPI, rank 0 resolves the rate and broadcasts it, and every rank then evaluates the same
// candidates on the same inputs, so all ranks pick the same scheme (and the plan's fingerprint
// checks it) and all report the same error when nothing fits.
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "model/scheme_choice.hpp"
#include "tools/run_options.hpp"

namespace seqpar {

struct AutoScheme {
  ModelInputs inputs;
  SchemeChoice choice;
  std::vector<std::string> notes;  // how the topology and the rate were found
};

// The topology of a run on `ranks` ranks: --topology FILE and the CLI overrides; else, with
// `comm`, discovered over it (collective); else one node of `ranks` CPU ranks (the threads
// backend) when `host_ranks`, else default_topology() (a dry run with nothing given).
StatusOr<Topology> resolve_topology(const RunOptions& options, Communicator* comm, int ranks,
                                    bool host_ranks, std::vector<std::string>& notes);

// The block-kernel rate for `topology` (local: no communication).
StatusOr<ComputeRate> resolve_rate(const RunOptions& options, const Topology& topology);

// Model inputs of the run's problem, phase and direction.
ModelInputs model_inputs_for(const RunOptions& options, const Topology& topology,
                             const ComputeRate& rate);

// Everything --scheme auto needs, and the choice (choice.chosen is -1 when no candidate is
// feasible: see no_feasible_candidate). `comm` null: this process alone (a dry run, or the
// threads backend before its ranks start), with `ranks` ranks (0: as the topology says); else
// collective over `comm`.
StatusOr<AutoScheme> plan_auto_scheme(const RunOptions& options, Communicator* comm, int ranks);

// kInvalidArgument listing every candidate's reason.
Status no_feasible_candidate(const AutoScheme& planned);

// The evaluated candidate matching what `options` runs (scheme, and hybrid's U when given); null
// when the model did not weigh it.
const CandidateCost* candidate_for(const AutoScheme& planned, const RunOptions& options);

// `options` with the choice applied (scheme, U, and ranks_per_node of a multi-node topology).
RunOptions with_choice(const RunOptions& options, const AutoScheme& chosen);

// `options` (a scheme the user named) placed on the run's topology: plan.ranks_per_node set when
// it spans nodes, so tree combines over nodes and hybrid's groups stay inside one, as under
// --scheme auto. The topology is `known` when given (the model already resolved it), else the
// user's (--topology, --nodes ...), else discovered over `comm` (collective), else one host.
// Never fails: a topology that cannot be had or does not fit this run (its rank count, or a
// round-robin placement where consecutive ranks do not share a node) gives ranks_per_node = 0,
// the flat schemes, with a warning.
RunOptions with_node_placement(const RunOptions& options, const Topology* known, Communicator* comm,
                               int ranks);

}  // namespace seqpar
