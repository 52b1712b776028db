// seqpar-run: one attention training step across ranks, under mpirun (--backend mpi|nccl) or as
// threads of one process (--backend threads --ranks P); prints a table or one JSON object.
// --scheme auto (the default) lets the cost model pick the scheme and its U x R grid
// (tools/auto_scheme.hpp); --dry-run stops after the choice, --explain shows every candidate.
// Exit codes: 0 pass, 1 error or failed check, 2 bad command line.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>

#include "comm/comm_staging.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "core/log.hpp"
#include "harness/decode_step.hpp"
#include "harness/training_step.hpp"
#include "tools/auto_scheme.hpp"
#include "tools/report.hpp"
#include "tools/run_options.hpp"
#ifdef SEQPAR_HAVE_MPI
#include <mpi.h>

#include "comm/mpi_communicator.hpp"
#endif
#ifdef SEQPAR_HAVE_CUDA
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#endif
#ifdef SEQPAR_HAVE_NCCL
#include "comm/nccl_communicator.hpp"
#endif

namespace seqpar {
namespace {

int print_report(const RunOptions& options, const StepReport& report, const AutoScheme* planned) {
  std::cout << (options.json ? report_json(options, report, planned)
                             : report_table(options, report, planned))
            << std::flush;
  return report.passed() ? 0 : 1;
}

// Whether this run consults the cost model: --scheme auto, or --explain beside a given scheme.
bool uses_model(const RunOptions& options) { return options.scheme_auto || options.explain; }

// The --explain table before a run (not with --json: stdout is one JSON object then).
void print_explain(const RunOptions& options, const AutoScheme& planned) {
  if (!options.explain || options.json) return;
  std::string notes;
  for (const std::string& note : planned.notes) notes += "  note       " + note + "\n";
  std::cout << notes << explain_table(planned.inputs, planned.choice) << std::flush;
}

// The options a run uses: the model's choice under --scheme auto, else the named scheme placed
// on the topology (ranks per node). Fails when nothing fits. Collective over `comm` when given.
StatusOr<RunOptions> options_to_run(const RunOptions& options, const AutoScheme* planned,
                                    Communicator* comm, int ranks) {
  if (!options.scheme_auto) {
    return with_node_placement(options, planned ? &planned->inputs.topology : nullptr, comm, ranks);
  }
  if (planned->choice.chosen < 0) return no_feasible_candidate(*planned);
  return with_choice(options, *planned);
}

// --dry-run: the choice, printed, without a communicator. Under mpirun only the first process
// prints.
int run_dry(const RunOptions& options) {
  StatusOr<AutoScheme> planned =
      plan_auto_scheme(options, nullptr, options.ranks_given ? options.ranks : 0);
  if (!planned.is_ok()) {
    std::fprintf(stderr, "seqpar-run: %s\n", planned.status().to_string().c_str());
    return 1;
  }
  const char* world_rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (world_rank == nullptr || std::atoi(world_rank) == 0) {
    std::cout << dry_run_report(options, planned.value()) << std::flush;
  }
  if (options.scheme_auto && planned.value().choice.chosen < 0) {
    std::fprintf(stderr, "seqpar-run: %s\n",
                 no_feasible_candidate(planned.value()).to_string().c_str());
    return 1;
  }
  return 0;
}

int run_with_threads(const RunOptions& requested) {
  std::optional<AutoScheme> planned;
  if (uses_model(requested)) {
    StatusOr<AutoScheme> found = plan_auto_scheme(requested, nullptr, requested.ranks);
    if (!found.is_ok()) {
      std::fprintf(stderr, "seqpar-run: %s\n", found.status().to_string().c_str());
      return 1;
    }
    planned = std::move(found).value();
    print_explain(requested, *planned);
  }
  StatusOr<RunOptions> chosen =
      options_to_run(requested, planned ? &*planned : nullptr, nullptr, requested.ranks);
  if (!chosen.is_ok()) {
    std::fprintf(stderr, "seqpar-run: %s\n", chosen.status().to_string().c_str());
    return 1;
  }
  const RunOptions& options = chosen.value();
  std::optional<StepReport> report;
  std::mutex report_mutex;
  const auto body = [&](Communicator& comm) -> Status {
    StatusOr<StepReport> result = run_phase_step(options, comm);
    if (!result.is_ok()) {
      SEQPAR_LOG_ERROR(result.status().to_string());
      return result.status();
    }
    if (comm.rank() == 0) {
      std::lock_guard<std::mutex> lock(report_mutex);
      report = std::move(result).value();
    }
    return Status::ok();
  };
  // A device plan's ranks share the one GPU (or the emulator), each thread with its streams.
  const Status status = run_threads(options.ranks, body, options.plan.device);
  if (!status.is_ok() || !report) return 1;
  return print_report(options, *report, planned ? &*planned : nullptr);
}

#ifdef SEQPAR_HAVE_MPI
#ifdef SEQPAR_HAVE_CUDA
// The GPU of this process: ranks sharing a host pick GPUs by their rank within the host.
StatusOr<int> local_device(const char* backend) {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local_rank = 0;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);
  const int devices = cuda_device_count();
  SEQPAR_REQUIRE(devices > 0, StatusCode::kUnsupported, "--backend ", backend,
                 " --device cuda needs a CUDA device; none is visible");
  return local_rank % devices;
}
#endif

StatusOr<std::unique_ptr<Communicator>> make_world_communicator(const RunOptions& options) {
  if (options.backend == BackendKind::kMpi) {
#ifdef SEQPAR_HAVE_CUDA
    if (options.plan.device == Device::kCuda) {
      SEQPAR_ASSIGN_OR_RETURN(const int device, local_device("mpi"));
      SEQPAR_CUDA_CHECK(cudaSetDevice(device));
    }
#endif
    // Device plans: CUDA-aware when the library says so, else staged (SEQPAR_MPI_CUDA_AWARE=0
    // forces staging); the report's first line says which.
    return make_mpi_communicator(MPI_COMM_WORLD, options.plan.device);
  }
#ifdef SEQPAR_HAVE_NCCL
  SEQPAR_ASSIGN_OR_RETURN(const int device, local_device("nccl"));
  return bootstrap_nccl_communicator(MPI_COMM_WORLD, device);
#else
  return SEQPAR_FAIL(StatusCode::kUnsupported,
                     "this build has no NCCL (it needs the CUDA toolkit with NCCL)");
#endif
}

// How --backend mpi moved a device plan's buffers (cuda-aware or staged), after the report (not
// with --json: stdout is one JSON object then).
void print_mpi_mode(const RunOptions& options, const Communicator& comm) {
  const char* mode = mpi_transfer_mode(comm);
  if (options.json || mode == nullptr || !comm.device_memory()) return;
  std::cout << "  mpi        device buffers, " << mode << " transfers"
            << (mpi_library_cuda_aware() ? "" : " (this MPI library reports no CUDA support)")
            << "\n";
}

// --scheme auto under MPI: collective; every rank evaluates the same inputs (rank 0's rate) and
// so makes the same choice, or fails with the same reasons.
StatusOr<StepReport> run_planned_step(const RunOptions& requested, Communicator& comm,
                                      std::optional<AutoScheme>& planned) {
  if (uses_model(requested)) {
    SEQPAR_ASSIGN_OR_RETURN(AutoScheme found, plan_auto_scheme(requested, &comm, comm.size()));
    planned = std::move(found);
    if (comm.rank() == 0) print_explain(requested, *planned);
  }
  SEQPAR_ASSIGN_OR_RETURN(
      const RunOptions options,
      options_to_run(requested, planned ? &*planned : nullptr, &comm, comm.size()));
  return run_phase_step(options, comm);
}

int run_with_mpi(int argc, char** argv, const RunOptions& requested) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  set_log_rank(rank);
  int exit_code = 1;
  {
    StatusOr<std::unique_ptr<Communicator>> comm = make_world_communicator(requested);
    if (!comm.is_ok()) {
      SEQPAR_LOG_ERROR(comm.status().to_string());
      MPI_Abort(MPI_COMM_WORLD, 1);  // a rank without a communicator cannot agree on anything
    }
    std::optional<AutoScheme> planned;
    StatusOr<StepReport> result = run_planned_step(requested, *comm.value(), planned);
    if (!result.is_ok()) SEQPAR_LOG_ERROR(result.status().to_string());
    // Every rank learns whether any rank failed, so all exit alike (bounded by the timeout).
    int32_t failed = result.is_ok() ? 0 : 1;
    // A device step's stream went with the step; the agreement runs on the default stream.
    if (comm.value()->device_memory()) (void)comm.value()->set_stream(nullptr);
    const Status agreed = all_reduce_host(*comm.value(), &failed, 1, DType::kI32, ReduceOp::kMax);
    if (!agreed.is_ok()) {
      SEQPAR_LOG_ERROR(agreed.to_string());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (failed == 0) {
      const RunOptions options =
          planned && requested.scheme_auto ? with_choice(requested, *planned) : requested;
      exit_code = rank == 0 ? print_report(options, result.value(), planned ? &*planned : nullptr)
                            : (result.value().passed() ? 0 : 1);
      if (rank == 0) print_mpi_mode(options, *comm.value());
    }
  }
  MPI_Finalize();
  return exit_code;
}
#endif

}  // namespace
}  // namespace seqpar

int main(int argc, char** argv) {
  using namespace seqpar;
  // Under a launcher, errors before MPI_Init still name this process's rank.
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* rank = std::getenv(name)) {
      set_log_rank(std::atoi(rank));
      break;
    }
  }
  bool exit_now = false;
  StatusOr<RunOptions> options = parse_run_options(argc, argv, &exit_now);
  if (!options.is_ok()) {
    std::fprintf(stderr, "seqpar-run: %s\n", options.status().to_string().c_str());
    return 2;
  }
  if (exit_now) return 0;
  if (options.value().dry_run) return run_dry(options.value());
  if (options.value().backend == BackendKind::kThreads) return run_with_threads(options.value());
#ifdef SEQPAR_HAVE_MPI
  return run_with_mpi(argc, argv, options.value());
#else
  std::fprintf(stderr, "seqpar-run: this build has no MPI; use --backend threads --ranks P\n");
  return 2;
#endif
}
