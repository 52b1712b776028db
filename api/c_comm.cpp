// The C ABI's communicators: adopted MPI and NCCL communicators, threads groups.
#include <vector>

#include "api/c_api_support.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "core/log.hpp"
#ifdef SEQPAR_HAVE_MPI
#include "comm/mpi_communicator.hpp"
#endif
#ifdef SEQPAR_HAVE_NCCL
#include "comm/nccl_communicator.hpp"
#endif

namespace seqpar::c_api {
namespace {

Status adopt(StatusOr<std::unique_ptr<Communicator>> made, seqpar_comm** out) {
  if (!made.is_ok()) return made.status();
  auto handle = std::make_unique<seqpar_comm>();
  handle->owned = std::move(made).value();
  handle->comm = handle->owned.get();
  *out = handle.release();
  return Status::ok();
}

Status from_mpi_fortran(int comm_f, int32_t device_value, seqpar_comm** out, const char* function) {
  SEQPAR_RETURN_IF_ERROR(require_non_null(out, function, "out"));
  SEQPAR_ASSIGN_OR_RETURN(const Device device, device_from_c(device_value, function));
#ifdef SEQPAR_HAVE_MPI
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": MPI is not initialised (call MPI_Init first)"));
  }
  // The handle travels as a Fortran integer: this side converts it with its own MPI's f2c.
  const MPI_Comm comm = MPI_Comm_f2c(static_cast<MPI_Fint>(comm_f));
  if (comm == MPI_COMM_NULL) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": comm_f ", comm_f, " is MPI_COMM_NULL"));
  }
  return adopt(make_mpi_communicator(comm, device), out);
#else
  (void)comm_f;
  (void)device;
  return Status(StatusCode::kUnsupported,
                str_cat(function, ": this libseqpar was built without MPI"));
#endif
}

// A lent handle for the body of one rank of seqpar_run_threads.
struct RunThreadsCall {
  seqpar_rank_body body = nullptr;
  void* user = nullptr;
};

Status run_body(const RunThreadsCall& call, Communicator& comm) {
  seqpar_comm lent;
  lent.comm = &comm;
  lent.lent = true;
  seqpar_set_last_error("");
  const seqpar_status result = call.body(&lent, call.user);
  if (result == SEQPAR_OK) return Status::ok();
  const int code = static_cast<int>(result);
  const StatusCode status_code = code > SEQPAR_OK && code <= SEQPAR_INTERNAL
                                     ? static_cast<StatusCode>(code)
                                     : StatusCode::kInternal;
  std::string message = seqpar_last_error();
  if (message.empty()) message = str_cat("the rank's body returned ", seqpar_status_name(result));
  return Status(status_code, std::move(message));
}

}  // namespace
}  // namespace seqpar::c_api

extern "C" {

seqpar_status seqpar_comm_from_mpi_fortran(int comm_f, seqpar_comm** out) {
  return seqpar::c_api::c_call("seqpar_comm_from_mpi_fortran", [&] {
    return seqpar::c_api::from_mpi_fortran(comm_f, SEQPAR_DEVICE_HOST, out,
                                           "seqpar_comm_from_mpi_fortran");
  });
}

seqpar_status seqpar_comm_from_mpi_fortran_device(int comm_f, int32_t device, seqpar_comm** out) {
  return seqpar::c_api::c_call("seqpar_comm_from_mpi_fortran_device", [&] {
    return seqpar::c_api::from_mpi_fortran(comm_f, device, out,
                                           "seqpar_comm_from_mpi_fortran_device");
  });
}

seqpar_status seqpar_comm_from_nccl(void* nccl_comm, void* cuda_stream, seqpar_comm** out) {
  constexpr const char* kFunction = "seqpar_comm_from_nccl";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(out, kFunction, "out"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(nccl_comm, kFunction, "nccl_comm"));
#ifdef SEQPAR_HAVE_NCCL
    return seqpar::c_api::adopt(
        seqpar::make_nccl_communicator(static_cast<ncclComm_t>(nccl_comm),
                                       static_cast<cudaStream_t>(cuda_stream)),
        out);
#else
    (void)cuda_stream;
    return seqpar::Status(seqpar::StatusCode::kUnsupported,
                          "seqpar_comm_from_nccl: this libseqpar was built without NCCL");
#endif
  });
}

seqpar_status seqpar_threads_group_create(int ranks, int32_t device, seqpar_comm** comms) {
  constexpr const char* kFunction = "seqpar_threads_group_create";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(comms, kFunction, "comms"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar::Device on,
                            seqpar::c_api::device_from_c(device, kFunction));
    SEQPAR_ASSIGN_OR_RETURN(auto group, seqpar::make_threads_communicators(ranks, on));
    // Every handle made before any is handed out, so a failure leaks nothing.
    std::vector<std::unique_ptr<seqpar_comm>> handles;
    for (auto& comm : group) {
      auto handle = std::make_unique<seqpar_comm>();
      handle->owned = std::move(comm);
      handle->comm = handle->owned.get();
      handles.push_back(std::move(handle));
    }
    for (size_t r = 0; r < handles.size(); ++r) comms[r] = handles[r].release();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_run_threads(int ranks, int32_t device, seqpar_rank_body body, void* user) {
  constexpr const char* kFunction = "seqpar_run_threads";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(
        seqpar::c_api::require_non_null(reinterpret_cast<const void*>(body), kFunction, "body"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar::Device on,
                            seqpar::c_api::device_from_c(device, kFunction));
    const seqpar::c_api::RunThreadsCall call{body, user};
    return seqpar::run_threads(
        ranks, [&call](seqpar::Communicator& comm) { return seqpar::c_api::run_body(call, comm); },
        on);
  });
}

void seqpar_comm_destroy(seqpar_comm* comm) {
  if (comm != nullptr && !comm->lent) delete comm;
}

seqpar_status seqpar_comm_rank(const seqpar_comm* comm, int* rank) {
  return seqpar::c_api::c_call("seqpar_comm_rank", [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(comm, "seqpar_comm_rank", "comm"));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(rank, "seqpar_comm_rank", "rank"));
    *rank = comm->comm->rank();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_comm_size(const seqpar_comm* comm, int* size) {
  return seqpar::c_api::c_call("seqpar_comm_size", [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(comm, "seqpar_comm_size", "comm"));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(size, "seqpar_comm_size", "size"));
    *size = comm->comm->size();
    return seqpar::Status::ok();
  });
}

}  // extern "C"
