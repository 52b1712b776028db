#pragma once
// Communicator: the one interface every scheme talks to, with three backends (threads, mpi, nccl).
//
// Semantics shared by every backend:
// - Buffers are raw pointers in the memory space the backend works on (device for nccl; host or
//   device for threads and mpi, device when made for Device::kCuda). Sizes are in bytes, except
//   reductions, which take an element count + DType.
// - Every operation has a blocking form and a start_ form that posts it and fills a Request; the
//   caller must later call wait(request). Buffers must stay untouched until wait returns.
//   After wait returns, the result is usable by this rank's later work: on the host for host
//   memory; for device memory, by the work enqueued afterwards on the communicator's stream.
// - Device memory (device_memory(): nccl, threads or mpi made for a device) is ordered with one
//   CUDA stream per rank, set_stream(): an operation posted now starts after the work enqueued on
//   that stream so far (its send buffers are written, its receive buffers free), and wait() makes
//   the stream wait for the operation's end. With nccl and threads the host never waits for the
//   device in either; it only waits, bounded by the timeout, for the peers to post. MPI moves
//   bytes from the host's side, so its device mode does wait for the device work enqueued before
//   a post (comm/mpi_device_communicator.hpp). split() children inherit the stream.
// - Every wait is bounded by timeout(); running out returns StatusCode::kTimeout naming the op and
//   the peer. abort(reason) makes every pending and future wait on every rank of the group fail
//   with kAborted (threads) or ends the job (mpi: MPI_Abort), so one failing rank never hangs
//   the others.
// - Operations are matched by call order, as in MPI/NCCL: all ranks of a group issue collectives
//   in the same order. Point-to-point messages between one pair of ranks are matched in order.
// - Accounting: every call counts one call and its bytes sent by this rank, per op kind:
//     exchange          sum of the send sizes
//     all_to_all(_v)    bytes sent to the other ranks (the self slice is not counted)
//     all_gather        (P-1) * own slice
//     reduce_scatter    (P-1) * slice size (own contributions to the other ranks' slices)
//     all_reduce        the buffer size (count * element size), as nccl-tests' algorithm bytes
//     broadcast         root: (P-1) * bytes; other ranks: 0
//     barrier           0
//   With P == 1, calls are counted and bytes are 0.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/status.hpp"

namespace seqpar {

enum class CommOp : int {
  kExchange = 0,  // grouped point-to-point send/recv
  kAllToAll,
  kAllGather,
  kReduceScatter,
  kAllReduce,
  kBroadcast,
  kBarrier,
  kCount
};
const char* comm_op_name(CommOp op);

// The bytes a rank's counters record for one all_gather (`bytes`: its slice), reduce_scatter
// (`bytes`: one slice) or all_reduce (`bytes`: the buffer) over `ranks` ranks: the convention
// above. Shared by the communicators' accounting and the schedules that predict it
// (runtime/schedule.hpp). Other ops: -1.
int64_t collective_bytes_sent(CommOp op, int ranks, int64_t bytes);

enum class ReduceOp : int { kSum = 0, kMax };

struct CommOpStats {
  int64_t calls = 0;
  int64_t bytes_sent = 0;
};

struct CommStats {
  std::array<CommOpStats, static_cast<size_t>(CommOp::kCount)> ops{};
  CommOpStats& operator[](CommOp op) { return ops[static_cast<size_t>(op)]; }
  const CommOpStats& operator[](CommOp op) const { return ops[static_cast<size_t>(op)]; }
  int64_t total_bytes_sent() const;
  int64_t total_calls() const;
  CommStats& operator+=(const CommStats& other);
};

class Communicator;

// A plan's counters: `comm`'s plus those of the communicators the plan split off it (their
// traffic is counted on them, not on `comm`).
CommStats stats_with(const Communicator& comm, std::span<Communicator* const> subgroups);
void reset_stats_with(Communicator& comm, std::span<Communicator* const> subgroups);

// One send or receive of a grouped exchange.
struct P2POp {
  enum class Kind : int { kSend = 0, kRecv };
  Kind kind = Kind::kSend;
  int peer = 0;
  void* buffer = nullptr;  // const for sends (cast away only to share the struct)
  size_t bytes = 0;

  static P2POp send(int peer, const void* buffer, size_t bytes) {
    return {Kind::kSend, peer, const_cast<void*>(buffer), bytes};
  }
  static P2POp recv(int peer, void* buffer, size_t bytes) {
    return {Kind::kRecv, peer, buffer, bytes};
  }
};

// Backend state of one posted operation.
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  // Completes the operation or fails by `deadline`.
  virtual Status wait(std::chrono::steady_clock::time_point deadline) = 0;
  // Called once, when the owning Request lets go of the op (waited or not). The default deletes
  // it; backends that pool their ops withdraw an unfinished one (so no peer touches its buffers
  // again) and take it back for a later post (comm/op_pool.hpp).
  virtual void release() { delete this; }
};

// Lets go of a PendingOp through release().
struct PendingOpRelease {
  void operator()(PendingOp* op) const { op->release(); }
};
using PendingOpPtr = std::unique_ptr<PendingOp, PendingOpRelease>;

// Handle of a posted non-blocking operation. Move-only; empty once waited. A Request must not
// outlive the Communicator that filled it: wait on it (or drop it) first. (Should one outlive it
// anyway, the op is withdrawn and deleted when the Request is dropped; it is never reused.)
class Request {
 public:
  Request() = default;
  explicit Request(PendingOpPtr op) : op_(std::move(op)) {}
  bool pending() const { return op_ != nullptr; }

 private:
  friend class Communicator;
  PendingOpPtr op_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual const char* backend_name() const = 0;         // "threads", "mpi", "nccl"
  virtual bool device_memory() const { return false; }  // true: buffers are device pointers

  // The CUDA stream (a cudaStream_t; nullptr: the legacy default stream) this rank's operations
  // are ordered with, for a device-memory communicator (see the header comment); a host-memory
  // communicator refuses it (kInvalidArgument).
  Status set_stream(void* stream);
  void* stream() const { return stream_; }

  // SEQPAR_TIMEOUT_S from the environment, else 300 s.
  static std::chrono::milliseconds default_comm_timeout();
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  // ---- point to point: a group of sends and receives posted together ----
  Status exchange(std::span<const P2POp> ops);
  Status start_exchange(std::span<const P2POp> ops, Request& request);

  // ---- collectives ----
  // Equal split: `bytes_per_rank` from send[r * bytes_per_rank] goes to rank r.
  Status all_to_all(const void* send, void* recv, size_t bytes_per_rank);
  Status start_all_to_all(const void* send, void* recv, size_t bytes_per_rank, Request& request);
  // Uneven split: send_bytes[r] bytes at send + send_offsets[r] go to rank r, and
  // recv_bytes[r] bytes from rank r land at recv + recv_offsets[r]. Spans have size() entries.
  Status all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                      std::span<const size_t> send_offsets, void* recv,
                      std::span<const size_t> recv_bytes, std::span<const size_t> recv_offsets);
  Status start_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                            std::span<const size_t> send_offsets, void* recv,
                            std::span<const size_t> recv_bytes,
                            std::span<const size_t> recv_offsets, Request& request);
  // recv holds size() slices of `bytes_per_rank`, in rank order.
  Status all_gather(const void* send, void* recv, size_t bytes_per_rank);
  Status start_all_gather(const void* send, void* recv, size_t bytes_per_rank, Request& request);
  // send holds size() slices of `count_per_rank` elements; rank r gets the reduction of slice r.
  Status reduce_scatter(const void* send, void* recv, size_t count_per_rank, DType dtype,
                        ReduceOp op);
  Status start_reduce_scatter(const void* send, void* recv, size_t count_per_rank, DType dtype,
                              ReduceOp op, Request& request);
  // In place when send == recv. Reductions are in rank order, so results are deterministic.
  Status all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op);
  Status start_all_reduce(const void* send, void* recv, size_t count, DType dtype, ReduceOp op,
                          Request& request);
  Status broadcast(void* buffer, size_t bytes, int root);
  Status start_broadcast(void* buffer, size_t bytes, int root, Request& request);
  Status barrier();

  // Completes a posted operation (bounded by timeout()). Waiting on an empty Request is ok.
  Status wait(Request& request);
  // Lets posted operations move forward without waiting for any: mpi makes one MPI_Iprobe, which
  // drives Open MPI's progress engine (large host messages otherwise move only inside MPI calls,
  // i.e. in the wait); threads (its copy engine) and nccl (its stream) progress by themselves.
  // Cheap; called by the CPU kernels between tiles (KernelProgressHook). Never fails.
  void progress() { do_progress(); }

  // A communicator over the ranks that pass the same `color`, ordered by (key, rank).
  // Collective over this communicator. The child shares the timeout and counts its own stats.
  StatusOr<std::unique_ptr<Communicator>> split(int color, int key);

  // Fails the whole group (see the header comment). Safe to call from any rank at any time.
  virtual void abort(const Status& reason) = 0;

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

 protected:
  Communicator(int rank, int size) : rank_(rank), size_(size) {}

  // Backends implement these; arguments are already validated and counted. Each posts the
  // operation and returns its PendingOp (or nullptr when it completed during the call). The
  // threads and mpi backends pool their ops (comm/op_pool.hpp), so once warm, posting and waiting
  // allocate nothing: the step loops of the schemes rely on it for exchanges.
  virtual StatusOr<PendingOpPtr> post_exchange(std::span<const P2POp> ops) = 0;
  virtual StatusOr<PendingOpPtr> post_all_to_all_v(const void* send,
                                                   std::span<const size_t> send_bytes,
                                                   std::span<const size_t> send_offsets, void* recv,
                                                   std::span<const size_t> recv_bytes,
                                                   std::span<const size_t> recv_offsets) = 0;
  virtual StatusOr<PendingOpPtr> post_all_gather(const void* send, void* recv,
                                                 size_t bytes_per_rank) = 0;
  virtual StatusOr<PendingOpPtr> post_reduce_scatter(const void* send, void* recv,
                                                     size_t count_per_rank, DType dtype,
                                                     ReduceOp op) = 0;
  virtual StatusOr<PendingOpPtr> post_all_reduce(const void* send, void* recv, size_t count,
                                                 DType dtype, ReduceOp op) = 0;
  virtual StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) = 0;
  virtual Status do_barrier(std::chrono::steady_clock::time_point deadline) = 0;
  virtual StatusOr<std::unique_ptr<Communicator>> do_split(int color, int key) = 0;
  virtual void do_progress() {}
  // A device-memory backend's hook for set_stream (called after stream() changed).
  virtual Status do_set_stream(void* /*stream*/) { return Status::ok(); }

  std::chrono::steady_clock::time_point deadline() const {
    return std::chrono::steady_clock::now() + timeout_;
  }

 private:
  int rank_;
  int size_;
  std::chrono::milliseconds timeout_ = default_comm_timeout();
  void* stream_ = nullptr;  // set_stream's (device memory only)
  CommStats stats_;
  // start_all_to_all's equal split, kept so the call allocates nothing once warm.
  std::vector<size_t> equal_split_bytes_, equal_split_offsets_;
};

}  // namespace seqpar
