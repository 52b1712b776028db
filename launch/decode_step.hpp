#pragma once
// seqpar-run --phase decode: a KV cache of --seq prompt tokens sharded over the ranks, then
// warmup + iters decoding steps, each appending --q-len new tokens (replicated on every rank) to
// their owner ranks and running tree decoding (--scheme tree) or the ring-decode baseline
// (--scheme ring). Times each step, measures communication against the formula, and with
// --check compares the last step's (O, LSE) on every rank with the fp64 reference of its n query
// rows against every cache token. Collective; every rank returns the same report.
#include "comm/communicator.hpp"
#include "launch/run_options.hpp"
#include "launch/training_step.hpp"

namespace seqpar {

StatusOr<StepReport> run_decode_step(const RunOptions& options, Communicator& comm);

// run_decode_step with --phase decode, else run_training_step.
StatusOr<StepReport> run_phase_step(const RunOptions& options, Communicator& comm);

}  // namespace seqpar
