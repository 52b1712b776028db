// MpiDeviceOp and MpiDeviceQueue: staging copies, the deferred MPI calls, completion on the
// caller's stream (mpi_device_op.hpp).
#include "comm/mpi_device_op.hpp"

#include <algorithm>
#include <thread>

#include "comm/host_reduce.hpp"
#include "core/cuda_check.hpp"

namespace seqpar {

// ---- MpiDeviceQueue ----

StatusOr<std::shared_ptr<MpiDeviceQueue>> MpiDeviceQueue::create() {
  auto queue = std::make_shared<MpiDeviceQueue>();
  SEQPAR_RETURN_IF_ERROR(queue->to_host_.create());
  SEQPAR_RETURN_IF_ERROR(queue->to_device_.create());
  return queue;
}

Status MpiDeviceQueue::push(MpiDeviceOp& op) {
  queued_.push_back(&op);
  op.queued_ = true;
  return launch_ready();
}

Status MpiDeviceQueue::launch_ready() {
  size_t launched = 0;
  Status status;
  for (; launched < queued_.size(); ++launched) {
    StatusOr<bool> done = queued_[launched]->copies_out_done();
    if (!done.is_ok()) {
      status = done.status();
      break;
    }
    if (!done.value()) break;
    status = queued_[launched]->launch();
    if (!status.is_ok()) {
      ++launched;  // failed, but out of the queue: its wait reports nothing more
      break;
    }
  }
  queued_.erase(queued_.begin(), queued_.begin() + static_cast<ptrdiff_t>(launched));
  return status;
}

Status MpiDeviceQueue::launch_all(std::chrono::steady_clock::time_point deadline) {
  for (int polls = 0; !queued_.empty(); ++polls) {
    SEQPAR_RETURN_IF_ERROR(launch_ready());
    if (queued_.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return queued_.front()->requests.timed_out(
          " waiting for the device to copy its send buffers to the host");
    }
    if (polls < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  return Status::ok();
}

void MpiDeviceQueue::remove(MpiDeviceOp& op) {
  queued_.erase(std::remove(queued_.begin(), queued_.end(), &op), queued_.end());
}

// ---- MpiDeviceOp ----

MpiDeviceOp::~MpiDeviceOp() {
  // The staging buffers are freed with the op: their copies must be over first.
  for (cudaEvent_t event : {ready_, staged_, landed_}) {
    if (event == nullptr) continue;
    cudaEventSynchronize(event);
    cudaEventDestroy(event);
  }
}

Status MpiDeviceOp::begin(Kind kind, const char* op_name, bool point_to_point, MPI_Comm comm,
                          int rank, std::chrono::milliseconds timeout, cudaStream_t caller,
                          size_t send_bytes, size_t recv_bytes) {
  kind_ = kind;
  comm_ = comm;
  caller_ = caller;
  timeout_ = timeout;
  requests.begin(op_name, point_to_point, rank, timeout);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (ready_ == nullptr) {
    for (cudaEvent_t* event : {&ready_, &staged_, &landed_}) {
      SEQPAR_CUDA_CHECK(cudaEventCreateWithFlags(event, cudaEventDisableTiming));
    }
  } else {
    // The previous post's copies (in: usually just enqueued by its wait; out: only when it was
    // let go unwaited) may still read or write the staging buffers. Neither waits for any work
    // of the caller's but that before the previous post, so this is short.
    SEQPAR_RETURN_IF_ERROR(poll(staged_, deadline, " waiting for a previous copy to the host"));
    SEQPAR_RETURN_IF_ERROR(poll(landed_, deadline, " waiting for a previous copy to the device"));
  }
  SEQPAR_RETURN_IF_ERROR(send_stage_.reserve(send_bytes));
  SEQPAR_RETURN_IF_ERROR(recv_stage_.reserve(recv_bytes));
  SEQPAR_CUDA_CHECK(cudaEventRecord(ready_, caller_));
  return Status::ok();
}

Status MpiDeviceOp::wait_ready() {
  return poll(ready_, std::chrono::steady_clock::now() + timeout_,
              " waiting for the device to write its buffers");
}

Status MpiDeviceOp::start_copies_out() {
  if (outs_.empty()) return Status::ok();
  const cudaStream_t stream = queue_->to_host();
  SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(stream, ready_, 0));
  for (const Copy& copy : outs_) {
    if (copy.bytes == 0) continue;
    SEQPAR_CUDA_CHECK(
        cudaMemcpyAsync(copy.dst, copy.src, copy.bytes, cudaMemcpyDeviceToHost, stream));
  }
  SEQPAR_CUDA_CHECK(cudaEventRecord(staged_, stream));
  return Status::ok();
}

StatusOr<bool> MpiDeviceOp::copies_out_done() const {
  if (outs_.empty()) return true;
  const cudaError_t query = cudaEventQuery(staged_);
  if (query == cudaErrorNotReady) return false;
  SEQPAR_CUDA_CHECK(query);
  return true;
}

Status MpiDeviceOp::launch() {
  queued_ = false;
  launch_failed_ = post_calls();
  return launch_failed_;
}

Status MpiDeviceOp::post_calls() {
  MPI_Request request = MPI_REQUEST_NULL;
  switch (kind_) {
    case Kind::kExchange:
      for (const Message& message : sends) {
        // Messages above INT_MAX bytes travel as in-order chunks; an empty one still matches.
        size_t offset = 0;
        do {
          const size_t chunk = std::min(message.bytes - offset, kMaxMpiCount);
          SEQPAR_MPI_CHECK(MPI_Isend(message.data + offset, static_cast<int>(chunk), MPI_BYTE,
                                     message.peer, 0, comm_, &request));
          requests.add(request);
          offset += chunk;
        } while (offset < message.bytes);
      }
      return Status::ok();
    case Kind::kAllToAllV:
      SEQPAR_MPI_CHECK(MPI_Ialltoallv(mpi_send, send_counts.data(), send_displs.data(), MPI_BYTE,
                                      mpi_recv, recv_counts.data(), recv_displs.data(), MPI_BYTE,
                                      comm_, &request));
      break;
    case Kind::kAllGather:
    case Kind::kGatherReduce:
      SEQPAR_MPI_CHECK(MPI_Iallgather(in_place ? MPI_IN_PLACE : mpi_send, static_cast<int>(piece),
                                      MPI_BYTE, mpi_recv, static_cast<int>(piece), MPI_BYTE, comm_,
                                      &request));
      break;
    case Kind::kScatterReduce:
      SEQPAR_MPI_CHECK(MPI_Ialltoall(mpi_send, static_cast<int>(piece), MPI_BYTE, mpi_recv,
                                     static_cast<int>(piece), MPI_BYTE, comm_, &request));
      break;
    case Kind::kBroadcast:
      SEQPAR_MPI_CHECK(
          MPI_Ibcast(mpi_recv, static_cast<int>(piece), MPI_BYTE, root, comm_, &request));
      break;
  }
  requests.add(request);
  return Status::ok();
}

Status MpiDeviceOp::wait(std::chrono::steady_clock::time_point deadline) {
  // Every send of the family is posted before this rank blocks in MPI, so a peer waiting on this
  // rank is never left waiting for a message still queued here.
  SEQPAR_RETURN_IF_ERROR(queue_->launch_all(deadline));
  SEQPAR_RETURN_IF_ERROR(launch_failed_);
  SEQPAR_RETURN_IF_ERROR(requests.wait(deadline));
  if (kind_ == Kind::kGatherReduce || kind_ == Kind::kScatterReduce) reduce_on_host();
  return finish();
}

void MpiDeviceOp::reduce_on_host() {
  inputs_.clear();
  for (int r = 0; r < ranks; ++r) inputs_.push_back(recv_stage() + static_cast<size_t>(r) * piece);
  // The send stage is free once MPI is done with it: the result goes there.
  reduce_in_order(inputs_, 0, count, dtype, reduce, send_stage());
  ins_.push_back({reduced, send_stage(), count * dtype_size(dtype)});
}

Status MpiDeviceOp::finish() {
  if (ins_.empty()) return Status::ok();
  const cudaStream_t stream = queue_->to_device();
  // The receive buffers are the caller's until the work enqueued before the post is done.
  SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(stream, ready_, 0));
  for (const Copy& copy : ins_) {
    if (copy.bytes == 0) continue;
    SEQPAR_CUDA_CHECK(
        cudaMemcpyAsync(copy.dst, copy.src, copy.bytes, cudaMemcpyHostToDevice, stream));
  }
  SEQPAR_CUDA_CHECK(cudaEventRecord(landed_, stream));
  SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(caller_, landed_, 0));
  return Status::ok();
}

Status MpiDeviceOp::poll(cudaEvent_t event, std::chrono::steady_clock::time_point deadline,
                         const char* what) const {
  for (int polls = 0;; ++polls) {
    const cudaError_t query = cudaEventQuery(event);
    if (query == cudaSuccess) return Status::ok();
    if (query != cudaErrorNotReady) SEQPAR_CUDA_CHECK(query);
    if (std::chrono::steady_clock::now() >= deadline) return requests.timed_out(what);
    if (polls < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

bool MpiDeviceOp::recycle() {
  if (queued_) {
    queue_->remove(*this);
    queued_ = false;
  }
  // The staging buffers are ours, not the caller's: after an unfinished point-to-point request
  // is cancelled or freed, MPI may still write or read them, so such an op is not reused.
  const bool in_flight = requests.any_unfinished();
  if (!requests.withdraw() || in_flight) return false;
  launch_failed_ = Status::ok();
  sends.clear();
  outs_.clear();
  ins_.clear();
  in_place = false;
  return true;
}

}  // namespace seqpar
