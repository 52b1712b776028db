#pragma once
// The NCCL backend: device buffers, every op enqueued on the backend's NCCL stream, ordered with
// the compute stream (Communicator::set_stream) as comm/communicator.hpp says: a post first makes
// the NCCL stream wait for an event recorded on the compute stream, and records a completion
// event after the NCCL calls. wait() makes the compute stream wait for that event (no host sync)
// when a compute stream is set, and otherwise (the legacy default stream) polls the event and
// ncclCommGetAsyncError on the host until the timeout. Events live in pooled ops, so a warm
// communicator creates none. all_to_all_v is grouped ncclSend/ncclRecv; barrier is a one-int
// all_reduce waited on the host. abort() calls ncclCommAbort. The caller's current CUDA device
// must be the communicator's device.
// Only in builds with SEQPAR_HAVE_NCCL and SEQPAR_HAVE_MPI.
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <memory>

#include "comm/communicator.hpp"
#include "comm/op_pool.hpp"

namespace seqpar {

// Adopts the caller's communicator and stream; neither is destroyed by the result.
StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(ncclComm_t adopted,
                                                               cudaStream_t stream);
// Creates an NCCL communicator over the ranks of `comm` on CUDA device `device` (unique id from
// rank 0, broadcast over MPI) with its own non-blocking stream; the result owns and destroys both.
StatusOr<std::unique_ptr<Communicator>> bootstrap_nccl_communicator(MPI_Comm comm, int device);

struct NcclHandle;  // the ncclComm_t plus its aborted flag, shared with posted ops

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<NcclHandle> handle, int rank, int size, cudaStream_t stream,
                   bool owns_stream);
  ~NcclCommunicator() override;

  const char* backend_name() const override { return "nccl"; }
  bool device_memory() const override { return true; }
  void abort(const Status& reason) override;

  // The stream the NCCL calls are enqueued on (shared with split children).
  cudaStream_t nccl_stream() const { return nccl_stream_; }

 protected:
  StatusOr<PendingOpPtr> post_exchange(std::span<const P2POp> ops) override;
  StatusOr<PendingOpPtr> post_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                           std::span<const size_t> send_offsets, void* recv,
                                           std::span<const size_t> recv_bytes,
                                           std::span<const size_t> recv_offsets) override;
  StatusOr<PendingOpPtr> post_all_gather(const void* send, void* recv,
                                         size_t bytes_per_rank) override;
  StatusOr<PendingOpPtr> post_reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                             DType dtype, ReduceOp op) override;
  StatusOr<PendingOpPtr> post_all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                         ReduceOp op) override;
  StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) override;
  Status do_barrier(std::chrono::steady_clock::time_point deadline) override;
  StatusOr<std::unique_ptr<Communicator>> do_split(int color, int key) override;

 private:
  // Posts one op: a pooled op ordered after the compute stream's work so far (unless
  // `on_host`: the barrier), `enqueue()`'s NCCL calls on the NCCL stream, its completion event.
  // on_host: wait() polls on the host whatever the compute stream.
  template <class Enqueue>
  StatusOr<PendingOpPtr> post(const char* op_name, bool on_host, Enqueue enqueue);

  std::shared_ptr<NcclHandle> handle_;
  cudaStream_t nccl_stream_;
  bool owns_stream_;
  int* barrier_scratch_ = nullptr;  // one device int, allocated on the first barrier
  OpPool ops_;                      // of the ops (and their events) posted here
};

}  // namespace seqpar
