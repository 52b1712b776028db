// NcclCommunicator: Communicator ops as NCCL calls on the NCCL stream, ordered with the compute
// stream and completed through pooled cudaEvents (see nccl_communicator.hpp).
#include "comm/nccl_communicator.hpp"

#include <thread>

#include "core/cuda_check.hpp"
#include "core/log.hpp"

// Returns a located kCommError when an NCCL call fails.
#define SEQPAR_NCCL_CHECK(call)                                                  \
  do {                                                                           \
    const ncclResult_t seqpar_nccl_err_ = (call);                                \
    if (seqpar_nccl_err_ != ncclSuccess)                                         \
      return ::seqpar::make_status(                                              \
          ::seqpar::StatusCode::kCommError, __FILE__, __LINE__,                  \
          ::seqpar::str_cat(#call, ": ", ncclGetErrorString(seqpar_nccl_err_))); \
  } while (0)

namespace seqpar {

struct NcclHandle {
  NcclHandle(ncclComm_t comm_in, bool owns_comm_in) : comm(comm_in), owns_comm(owns_comm_in) {}
  ~NcclHandle() {
    if (owns_comm && !aborted) ncclCommDestroy(comm);
  }
  ncclComm_t comm;
  bool owns_comm;
  bool aborted = false;
};

namespace {

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
    case DType::kF64:
      return ncclFloat64;
    case DType::kI32:
      return ncclInt32;
    case DType::kI64:
      return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kMax ? ncclMax : ncclSum; }

// Enqueues `enqueue()` (a series of ncclSend/ncclRecv) as one NCCL group; the group is closed
// even when a call inside it fails.
template <class Enqueue>
Status grouped(Enqueue enqueue) {
  SEQPAR_NCCL_CHECK(ncclGroupStart());
  const ncclResult_t inside = enqueue();
  const ncclResult_t end = ncclGroupEnd();
  SEQPAR_NCCL_CHECK(inside);
  SEQPAR_NCCL_CHECK(end);
  return Status::ok();
}

// One posted op, pooled with its two events: `ready`, recorded on the compute stream before the
// NCCL calls (the NCCL stream waits for it), and `done`, recorded on the NCCL stream after them.
class NcclOp final : public PooledOp {
 public:
  explicit NcclOp(std::shared_ptr<NcclHandle> handle) : handle_(std::move(handle)) {}
  ~NcclOp() override {
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (done_ != nullptr) cudaEventDestroy(done_);
  }

  // Before the NCCL calls: the NCCL stream waits for the work enqueued so far on `compute`
  // (unless on_host). The events are made on the op's first post only.
  Status begin(const char* op_name, int rank, std::chrono::milliseconds timeout,
               cudaStream_t compute, cudaStream_t nccl, bool on_host) {
    op_name_ = op_name;
    rank_ = rank;
    timeout_ = timeout;
    compute_ = compute;
    on_host_ = on_host || compute == nullptr;
    if (ready_ == nullptr) {
      SEQPAR_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      SEQPAR_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    }
    if (on_host) return Status::ok();
    SEQPAR_CUDA_CHECK(cudaEventRecord(ready_, compute));
    SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(nccl, ready_, 0));
    return Status::ok();
  }

  // After the NCCL calls: the completion event.
  Status end(cudaStream_t nccl) {
    SEQPAR_CUDA_CHECK(cudaEventRecord(done_, nccl));
    return Status::ok();
  }

  Status wait(std::chrono::steady_clock::time_point deadline) override {
    SEQPAR_REQUIRE(!handle_->aborted, StatusCode::kAborted, "nccl ", op_name_,
                   ": the communicator was aborted");
    if (!on_host_) {
      SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(compute_, done_, 0));
      return Status::ok();
    }
    for (;;) {
      const cudaError_t query = cudaEventQuery(done_);
      if (query == cudaSuccess) return Status::ok();
      if (query != cudaErrorNotReady) SEQPAR_CUDA_CHECK(query);
      ncclResult_t async = ncclSuccess;
      SEQPAR_NCCL_CHECK(ncclCommGetAsyncError(handle_->comm, &async));
      SEQPAR_REQUIRE(async == ncclSuccess || async == ncclInProgress, StatusCode::kCommError,
                     "nccl ", op_name_, " on rank ", rank_, ": ", ncclGetErrorString(async));
      SEQPAR_REQUIRE(std::chrono::steady_clock::now() < deadline, StatusCode::kTimeout, "nccl ",
                     op_name_, " timed out after ", timeout_.count(), " ms on rank ", rank_);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

 protected:
  // Re-recording an event the device has not reached yet is fine: waits bind to the record that
  // was current when they were enqueued.
  bool recycle() override { return true; }

 private:
  std::shared_ptr<NcclHandle> handle_;
  const char* op_name_ = "";
  int rank_ = 0;
  std::chrono::milliseconds timeout_{0};
  cudaStream_t compute_ = nullptr;
  bool on_host_ = true;
  cudaEvent_t ready_ = nullptr;
  cudaEvent_t done_ = nullptr;
};

StatusOr<std::unique_ptr<Communicator>> adopt(std::shared_ptr<NcclHandle> handle,
                                              cudaStream_t stream, bool owns_stream) {
  int rank = 0, size = 0;
  SEQPAR_NCCL_CHECK(ncclCommUserRank(handle->comm, &rank));
  SEQPAR_NCCL_CHECK(ncclCommCount(handle->comm, &size));
  return std::unique_ptr<Communicator>(
      std::make_unique<NcclCommunicator>(std::move(handle), rank, size, stream, owns_stream));
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::shared_ptr<NcclHandle> handle, int rank, int size,
                                   cudaStream_t stream, bool owns_stream)
    : Communicator(rank, size),
      handle_(std::move(handle)),
      nccl_stream_(stream),
      owns_stream_(owns_stream) {}

NcclCommunicator::~NcclCommunicator() {
  if (barrier_scratch_ != nullptr) cudaFree(barrier_scratch_);
  if (owns_stream_) cudaStreamDestroy(nccl_stream_);
}

void NcclCommunicator::abort(const Status& reason) {
  if (handle_->aborted) return;
  SEQPAR_LOG_ERROR("nccl communicator aborted: ", reason.to_string());
  handle_->aborted = true;
  ncclCommAbort(handle_->comm);
}

template <class Enqueue>
StatusOr<PendingOpPtr> NcclCommunicator::post(const char* op_name, bool on_host, Enqueue enqueue) {
  NcclOp& op = ops_.acquire<NcclOp>([&] { return std::make_unique<NcclOp>(handle_); });
  PendingOpPtr pending(&op);  // given back to the pool on any failure below
  SEQPAR_RETURN_IF_ERROR(op.begin(op_name, rank(), timeout(), static_cast<cudaStream_t>(stream()),
                                  nccl_stream_, on_host));
  SEQPAR_RETURN_IF_ERROR(enqueue());
  SEQPAR_RETURN_IF_ERROR(op.end(nccl_stream_));
  return pending;
}

StatusOr<PendingOpPtr> NcclCommunicator::post_exchange(std::span<const P2POp> ops) {
  return post("exchange", false, [&] {
    return grouped([&] {
      for (const P2POp& op : ops) {
        const ncclResult_t result =
            op.kind == P2POp::Kind::kSend
                ? ncclSend(op.buffer, op.bytes, ncclUint8, op.peer, handle_->comm, nccl_stream_)
                : ncclRecv(op.buffer, op.bytes, ncclUint8, op.peer, handle_->comm, nccl_stream_);
        if (result != ncclSuccess) return result;
      }
      return ncclSuccess;
    });
  });
}

StatusOr<PendingOpPtr> NcclCommunicator::post_all_to_all_v(
    const void* send, std::span<const size_t> send_bytes, std::span<const size_t> send_offsets,
    void* recv, std::span<const size_t> recv_bytes, std::span<const size_t> recv_offsets) {
  return post("all_to_all", false, [&] {
    return grouped([&] {
      for (size_t peer = 0; peer < static_cast<size_t>(size()); ++peer) {
        const int p = static_cast<int>(peer);
        ncclResult_t result = ncclSuccess;
        if (send_bytes[peer] > 0) {
          result = ncclSend(static_cast<const char*>(send) + send_offsets[peer], send_bytes[peer],
                            ncclUint8, p, handle_->comm, nccl_stream_);
        }
        if (result == ncclSuccess && recv_bytes[peer] > 0) {
          result = ncclRecv(static_cast<char*>(recv) + recv_offsets[peer], recv_bytes[peer],
                            ncclUint8, p, handle_->comm, nccl_stream_);
        }
        if (result != ncclSuccess) return result;
      }
      return ncclSuccess;
    });
  });
}

StatusOr<PendingOpPtr> NcclCommunicator::post_all_gather(const void* send, void* recv,
                                                         size_t bytes_per_rank) {
  return post("all_gather", false, [&]() -> Status {
    SEQPAR_NCCL_CHECK(
        ncclAllGather(send, recv, bytes_per_rank, ncclUint8, handle_->comm, nccl_stream_));
    return Status::ok();
  });
}

StatusOr<PendingOpPtr> NcclCommunicator::post_reduce_scatter(const void* send, void* recv,
                                                             size_t count_per_rank, DType dtype,
                                                             ReduceOp op) {
  return post("reduce_scatter", false, [&]() -> Status {
    SEQPAR_NCCL_CHECK(ncclReduceScatter(send, recv, count_per_rank, nccl_type(dtype), nccl_op(op),
                                        handle_->comm, nccl_stream_));
    return Status::ok();
  });
}

StatusOr<PendingOpPtr> NcclCommunicator::post_all_reduce(const void* send, void* recv, size_t count,
                                                         DType dtype, ReduceOp op) {
  return post("all_reduce", false, [&]() -> Status {
    SEQPAR_NCCL_CHECK(ncclAllReduce(send, recv, count, nccl_type(dtype), nccl_op(op), handle_->comm,
                                    nccl_stream_));
    return Status::ok();
  });
}

StatusOr<PendingOpPtr> NcclCommunicator::post_broadcast(void* buffer, size_t bytes, int root) {
  return post("broadcast", false, [&]() -> Status {
    SEQPAR_NCCL_CHECK(
        ncclBroadcast(buffer, buffer, bytes, ncclUint8, root, handle_->comm, nccl_stream_));
    return Status::ok();
  });
}

Status NcclCommunicator::do_barrier(std::chrono::steady_clock::time_point deadline) {
  if (barrier_scratch_ == nullptr) {
    SEQPAR_CUDA_CHECK(cudaMalloc(&barrier_scratch_, sizeof(int)));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(barrier_scratch_, 0, sizeof(int), nccl_stream_));
  }
  // A host barrier: not ordered with the compute stream, waited on the host.
  SEQPAR_ASSIGN_OR_RETURN(
      PendingOpPtr op, post("barrier", true, [&]() -> Status {
        SEQPAR_NCCL_CHECK(ncclAllReduce(barrier_scratch_, barrier_scratch_, 1, ncclInt32, ncclSum,
                                        handle_->comm, nccl_stream_));
        return Status::ok();
      }));
  return op->wait(deadline);
}

StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::do_split(int color, int key) {
  ncclComm_t child = nullptr;
  SEQPAR_NCCL_CHECK(ncclCommSplit(handle_->comm, color, key, &child, nullptr));
  // The child shares this communicator's NCCL stream, so the two never run concurrently (which
  // could deadlock across ranks); this communicator must outlive it. Communicator::split gives
  // the child our compute stream.
  return adopt(std::make_shared<NcclHandle>(child, true), nccl_stream_, false);
}

StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(ncclComm_t adopted,
                                                               cudaStream_t stream) {
  SEQPAR_REQUIRE(adopted != nullptr, StatusCode::kInvalidArgument,
                 "make_nccl_communicator: null ncclComm_t");
  return adopt(std::make_shared<NcclHandle>(adopted, false), stream, false);
}

StatusOr<std::unique_ptr<Communicator>> bootstrap_nccl_communicator(MPI_Comm comm, int device) {
  int rank = 0, size = 0;
  SEQPAR_REQUIRE(
      MPI_Comm_rank(comm, &rank) == MPI_SUCCESS && MPI_Comm_size(comm, &size) == MPI_SUCCESS,
      StatusCode::kCommError, "bootstrap_nccl_communicator: bad MPI communicator");
  SEQPAR_CUDA_CHECK(cudaSetDevice(device));
  // Rank 0 broadcasts the unique id together with whether it got one, so a failure there
  // fails every rank instead of leaving them in ncclCommInitRank.
  struct {
    ncclUniqueId id;
    int ok;
  } root_id{};
  if (rank == 0) root_id.ok = ncclGetUniqueId(&root_id.id) == ncclSuccess ? 1 : 0;
  SEQPAR_REQUIRE(MPI_Bcast(&root_id, sizeof(root_id), MPI_BYTE, 0, comm) == MPI_SUCCESS,
                 StatusCode::kCommError,
                 "bootstrap_nccl_communicator: MPI_Bcast of the NCCL id failed");
  SEQPAR_REQUIRE(root_id.ok == 1, StatusCode::kCommError,
                 "bootstrap_nccl_communicator: ncclGetUniqueId failed on rank 0");
  ncclComm_t nccl = nullptr;
  SEQPAR_NCCL_CHECK(ncclCommInitRank(&nccl, size, root_id.id, rank));
  auto handle = std::make_shared<NcclHandle>(nccl, true);
  cudaStream_t stream = nullptr;
  SEQPAR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return adopt(std::move(handle), stream, true);
}

}  // namespace seqpar
