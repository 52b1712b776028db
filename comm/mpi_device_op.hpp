#pragma once
// The device-memory MPI backend's posted op (MpiDeviceOp) and the state a communicator family
// shares (MpiDeviceQueue): comm/mpi_device_communicator.hpp says how the two modes move the data.
// Both are pooled with what they need, so a warm step creates no event, stream or buffer.
// Builds with CUDA and MPI only.
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/mpi_requests.hpp"
#include "comm/op_pool.hpp"
#include "core/device_buffer.hpp"

namespace seqpar {

class MpiDeviceOp;

// Shared by a communicator and the children split off it: the two private copy streams and the
// queue of posted ops whose MPI calls wait for their device-to-host copies. One queue for the
// family, so a wait on any of them first launches every send posted on all of them: two ranks
// waiting on each other through different communicators still find each other's messages.
class MpiDeviceQueue {
 public:
  static StatusOr<std::shared_ptr<MpiDeviceQueue>> create();
  MpiDeviceQueue() = default;
  ~MpiDeviceQueue() = default;
  MpiDeviceQueue(const MpiDeviceQueue&) = delete;
  MpiDeviceQueue& operator=(const MpiDeviceQueue&) = delete;

  cudaStream_t to_host() const { return to_host_.get(); }
  cudaStream_t to_device() const { return to_device_.get(); }

  // Queues `op`'s MPI calls behind those queued before it (every rank must start its MPI
  // collectives in one order), then launches what is ready.
  Status push(MpiDeviceOp& op);
  // Launches the queued ops, in order, whose copies to the host are done (cudaEventQuery),
  // stopping at the first that is not. Never waits.
  Status launch_ready();
  // Launches every queued op, waiting on the host (polled, bounded by `deadline`) for each
  // one's copies: what a wait does before it waits for MPI.
  Status launch_all(std::chrono::steady_clock::time_point deadline);
  // Takes an op that was let go before it was launched out of the queue.
  void remove(MpiDeviceOp& op);

 private:
  // Non-blocking: never ordered with the legacy stream behind our back, only by our events.
  CudaStream to_host_;
  CudaStream to_device_;
  std::vector<MpiDeviceOp*> queued_;  // in post order; capacity kept
};

class MpiDeviceOp final : public PooledOp {
 public:
  // What launch() posts to MPI.
  enum class Kind : int {
    kExchange,       // the sends (the receives are posted with the op)
    kAllToAllV,      // MPI_Ialltoallv(mpi_send, counts and displs, mpi_recv)
    kAllGather,      // MPI_Iallgather of `piece` bytes (in place: in_place)
    kGatherReduce,   // all_reduce: MPI_Iallgather of every rank's input, reduced on the host
    kScatterReduce,  // reduce_scatter: MPI_Ialltoall of the slices, reduced on the host
    kBroadcast,      // MPI_Ibcast of `piece` bytes from `root`
  };

  explicit MpiDeviceOp(std::shared_ptr<MpiDeviceQueue> queue) : queue_(std::move(queue)) {}
  ~MpiDeviceOp() override;

  // Starts a post on `comm`: waits (bounded) until the copies of this op's previous post no
  // longer use its staging buffers, grows them to `send_bytes` and `recv_bytes`, and records
  // `ready` on the caller's stream (the point the op's copies and MPI calls come after).
  Status begin(Kind kind, const char* op_name, bool point_to_point, MPI_Comm comm, int rank,
               std::chrono::milliseconds timeout, cudaStream_t caller, size_t send_bytes,
               size_t recv_bytes);
  // CUDA-aware mode: waits on the host (polled, bounded) for `ready`, so MPI reads written data.
  Status wait_ready();

  char* send_stage() { return send_stage_.data(); }
  char* recv_stage() { return recv_stage_.data(); }
  // A copy device -> send stage, enqueued on the queue's to-host stream by start_copies_out().
  void copy_out(const void* device_src, char* stage, size_t bytes) {
    outs_.push_back({stage, device_src, bytes});
  }
  // A copy stage -> device, enqueued on the to-device stream when the op completes.
  void copy_in(const char* stage, void* device_dst, size_t bytes) {
    ins_.push_back({device_dst, stage, bytes});
  }
  // Enqueues the copies out after `ready` (none: nothing), then records `staged`.
  Status start_copies_out();
  // Whether launch() may run: the copies out are done (at once when there are none).
  StatusOr<bool> copies_out_done() const;
  // Posts the MPI calls kept below (once); a failure is also kept for the wait.
  Status launch();

  Status wait(std::chrono::steady_clock::time_point deadline) override;

  // The MPI calls' arguments, filled by the communicator between begin() and push().
  MpiRequests requests;
  struct Message {
    int peer;
    const char* data;
    size_t bytes;
  };
  std::vector<Message> sends;                                           // kExchange
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;  // kAllToAllV
  const void* mpi_send = nullptr;
  void* mpi_recv = nullptr;
  size_t piece = 0;  // bytes from each rank (kAllGather, kGatherReduce, kScatterReduce, kBroadcast)
  bool in_place = false;  // kAllGather
  int root = 0;           // kBroadcast
  // kGatherReduce and kScatterReduce: `count` elements reduced over `ranks` pieces into the
  // send stage, then copied to `reduced`.
  size_t count = 0;
  int ranks = 1;
  DType dtype = DType::kF32;
  ReduceOp reduce = ReduceOp::kSum;
  void* reduced = nullptr;

 protected:
  bool recycle() override;

 private:
  friend class MpiDeviceQueue;  // marks the op queued
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  Status post_calls();
  // Polls `event` until done or `deadline`; `what` names the wait in the timeout.
  Status poll(cudaEvent_t event, std::chrono::steady_clock::time_point deadline,
              const char* what) const;
  // On the host: the reduction of the received pieces, in rank order (comm/host_reduce.hpp).
  void reduce_on_host();
  // The copies in after `ready`, then `landed`, which the caller's stream waits for.
  Status finish();

  std::shared_ptr<MpiDeviceQueue> queue_;
  Kind kind_ = Kind::kExchange;
  MPI_Comm comm_ = MPI_COMM_NULL;
  cudaStream_t caller_ = nullptr;
  std::chrono::milliseconds timeout_{0};
  bool queued_ = false;   // pushed and not yet launched
  Status launch_failed_;  // a launch that failed (in a progress() call, say), for the wait
  PinnedHostBuffer send_stage_, recv_stage_;  // only grow (to the largest op staged)
  std::vector<Copy> outs_, ins_;
  std::vector<const void*> inputs_;  // the pieces a host reduction combines
  // Made on the op's first post: `ready` on the caller's stream at the post, `staged` after the
  // copies out, `landed` after the copies in.
  cudaEvent_t ready_ = nullptr, staged_ = nullptr, landed_ = nullptr;
};

}  // namespace seqpar
