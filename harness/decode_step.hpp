#pragma once
// The harness's decoding step (seqpar-run --phase decode, seqpar-bench --mode decode): a
// DecodePlan (runtime/decode_plan.hpp) over a KV cache of problem.seq prompt tokens, then warmup
// + iters decoding steps, each appending q_len new tokens (replicated on every rank) and running
// the config's decoder. Times each step, measures communication against the decoder's schedule,
// and with check compares the last step's (O, LSE) on every rank with the fp64 reference of its
// n query rows against every cache token. Collective; every rank returns the same report.
#include "comm/communicator.hpp"
#include "harness/training_step.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

// The DecodePlan's config of a decode step: config.plan's problem as the prompt, a cache that
// holds every step's tokens.
DecodeConfig decode_config_of(const StepConfig& config);

StatusOr<StepReport> run_decode_step(const StepConfig& config, Communicator& comm);

// run_decode_step for Phase::kDecode, else run_training_step.
StatusOr<StepReport> run_phase_step(const StepConfig& config, Communicator& comm);

}  // namespace seqpar
