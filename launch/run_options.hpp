#pragma once
// seqpar-run's options (Boost.Program_options), with defaults and validation of the CLI itself.
// Problem rules (divisibility, head dims) are checked by Plan::create on every rank.
#include <cstdint>
#include <string>

#include "core/status.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

enum class BackendKind : int { kThreads = 0, kMpi, kNccl };
inline const char* backend_name(BackendKind backend) {
  switch (backend) {
    case BackendKind::kThreads:
      return "threads";
    case BackendKind::kMpi:
      return "mpi";
    case BackendKind::kNccl:
      return "nccl";
  }
  return "?";
}

struct RunOptions {
  BackendKind backend = BackendKind::kThreads;
  int ranks = 4;  // threads backend only (1..1024); mpi/nccl take the size of MPI_COMM_WORLD
  PlanConfig plan;
  bool backward = false;
  bool decode = false;  // --phase decode: a decoding step over a KV cache (launch/decode_step.hpp)
  int64_t q_len = 1;    // --q-len: new query tokens per decoding step
  int iters = 3;
  int warmup = 1;
  uint64_t seed = 1234;
  bool check = false;
  bool json = false;
  double timeout_s = 0.0;  // 0: the communicator's default (SEQPAR_TIMEOUT_S or 300 s)
};

// Parses argv. Returns kOk with *exit_now = true after printing --help.
StatusOr<RunOptions> parse_run_options(int argc, char** argv, bool* exit_now);

}  // namespace seqpar
