// NcclCommunicator: Communicator ops as NCCL calls on the backend stream, completed through
// cudaEvents (see nccl_communicator.hpp).
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

// One posted op: its completion event on the backend stream.
class NcclPendingOp final : public PendingOp {
 public:
  NcclPendingOp(std::shared_ptr<NcclHandle> handle, const char* op_name, int rank,
                std::chrono::milliseconds timeout, cudaStream_t consumer)
      : handle_(std::move(handle)),
        op_name_(op_name),
        rank_(rank),
        timeout_(timeout),
        consumer_(consumer) {}
  ~NcclPendingOp() override {
    if (event_ != nullptr) cudaEventDestroy(event_);
  }

  Status record(cudaStream_t stream) {
    SEQPAR_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    SEQPAR_CUDA_CHECK(cudaEventRecord(event_, stream));
    return Status::ok();
  }

  Status wait(std::chrono::steady_clock::time_point deadline) override {
    SEQPAR_REQUIRE(!handle_->aborted, StatusCode::kAborted, "nccl ", op_name_,
                   ": the communicator was aborted");
    if (consumer_ != nullptr) {
      SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(consumer_, event_, 0));
      return Status::ok();
    }
    for (;;) {
      const cudaError_t query = cudaEventQuery(event_);
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

 private:
  std::shared_ptr<NcclHandle> handle_;
  const char* op_name_;
  int rank_;
  std::chrono::milliseconds timeout_;
  cudaStream_t consumer_;
  cudaEvent_t event_ = nullptr;
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
      stream_(stream),
      owns_stream_(owns_stream) {}

NcclCommunicator::~NcclCommunicator() {
  if (barrier_scratch_ != nullptr) cudaFree(barrier_scratch_);
  if (owns_stream_) cudaStreamDestroy(stream_);
}

void NcclCommunicator::abort(const Status& reason) {
  if (handle_->aborted) return;
  SEQPAR_LOG_ERROR("nccl communicator aborted: ", reason.to_string());
  handle_->aborted = true;
  ncclCommAbort(handle_->comm);
}

StatusOr<PendingOpPtr> NcclCommunicator::record(const char* op_name, cudaStream_t consumer) {
  auto op = std::make_unique<NcclPendingOp>(handle_, op_name, rank(), timeout(), consumer);
  SEQPAR_RETURN_IF_ERROR(op->record(stream_));
  return PendingOpPtr(op.release());
}

StatusOr<PendingOpPtr> NcclCommunicator::post_exchange(std::span<const P2POp> ops) {
  SEQPAR_RETURN_IF_ERROR(grouped([&] {
    for (const P2POp& op : ops) {
      const ncclResult_t result =
          op.kind == P2POp::Kind::kSend
              ? ncclSend(op.buffer, op.bytes, ncclUint8, op.peer, handle_->comm, stream_)
              : ncclRecv(op.buffer, op.bytes, ncclUint8, op.peer, handle_->comm, stream_);
      if (result != ncclSuccess) return result;
    }
    return ncclSuccess;
  }));
  return record("exchange", consumer_stream_);
}

StatusOr<PendingOpPtr> NcclCommunicator::post_all_to_all_v(
    const void* send, std::span<const size_t> send_bytes, std::span<const size_t> send_offsets,
    void* recv, std::span<const size_t> recv_bytes, std::span<const size_t> recv_offsets) {
  SEQPAR_RETURN_IF_ERROR(grouped([&] {
    for (size_t peer = 0; peer < static_cast<size_t>(size()); ++peer) {
      const int p = static_cast<int>(peer);
      ncclResult_t result = ncclSuccess;
      if (send_bytes[peer] > 0) {
        result = ncclSend(static_cast<const char*>(send) + send_offsets[peer], send_bytes[peer],
                          ncclUint8, p, handle_->comm, stream_);
      }
      if (result == ncclSuccess && recv_bytes[peer] > 0) {
        result = ncclRecv(static_cast<char*>(recv) + recv_offsets[peer], recv_bytes[peer],
                          ncclUint8, p, handle_->comm, stream_);
      }
      if (result != ncclSuccess) return result;
    }
    return ncclSuccess;
  }));
  return record("all_to_all", consumer_stream_);
}

StatusOr<PendingOpPtr> NcclCommunicator::post_all_gather(const void* send, void* recv,
                                                         size_t bytes_per_rank) {
  SEQPAR_NCCL_CHECK(ncclAllGather(send, recv, bytes_per_rank, ncclUint8, handle_->comm, stream_));
  return record("all_gather", consumer_stream_);
}

StatusOr<PendingOpPtr> NcclCommunicator::post_reduce_scatter(const void* send, void* recv,
                                                             size_t count_per_rank, DType dtype,
                                                             ReduceOp op) {
  SEQPAR_NCCL_CHECK(ncclReduceScatter(send, recv, count_per_rank, nccl_type(dtype), nccl_op(op),
                                      handle_->comm, stream_));
  return record("reduce_scatter", consumer_stream_);
}

StatusOr<PendingOpPtr> NcclCommunicator::post_all_reduce(const void* send, void* recv, size_t count,
                                                         DType dtype, ReduceOp op) {
  SEQPAR_NCCL_CHECK(
      ncclAllReduce(send, recv, count, nccl_type(dtype), nccl_op(op), handle_->comm, stream_));
  return record("all_reduce", consumer_stream_);
}

StatusOr<PendingOpPtr> NcclCommunicator::post_broadcast(void* buffer, size_t bytes, int root) {
  SEQPAR_NCCL_CHECK(ncclBroadcast(buffer, buffer, bytes, ncclUint8, root, handle_->comm, stream_));
  return record("broadcast", consumer_stream_);
}

Status NcclCommunicator::do_barrier(std::chrono::steady_clock::time_point deadline) {
  if (barrier_scratch_ == nullptr) {
    SEQPAR_CUDA_CHECK(cudaMalloc(&barrier_scratch_, sizeof(int)));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(barrier_scratch_, 0, sizeof(int), stream_));
  }
  SEQPAR_NCCL_CHECK(ncclAllReduce(barrier_scratch_, barrier_scratch_, 1, ncclInt32, ncclSum,
                                  handle_->comm, stream_));
  SEQPAR_ASSIGN_OR_RETURN(PendingOpPtr op, record("barrier", nullptr));
  return op->wait(deadline);
}

StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::do_split(int color, int key) {
  ncclComm_t child = nullptr;
  SEQPAR_NCCL_CHECK(ncclCommSplit(handle_->comm, color, key, &child, nullptr));
  // The child shares this communicator's stream, so the two never run concurrently (which
  // could deadlock across ranks); this communicator must outlive it.
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> result,
                          adopt(std::make_shared<NcclHandle>(child, true), stream_, false));
  static_cast<NcclCommunicator&>(*result).set_consumer_stream(consumer_stream_);
  return result;
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
