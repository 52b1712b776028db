#pragma once
// Posted operations of the threads backend (pull model: each rank copies into its own receive
// buffers, from its peers' send buffers, inside its own waits; point-to-point copies are also
// taken by the domain's copy engine as soon as both sides are posted). Any wait of a thread drives
// all pending operations of that thread, so ranks may wait on their operations in any order. Ops
// come from their communicator's OpPool: a post fills one, its release withdraws and clears it.
//
// On device memory (a domain made for a device) the host moves no byte; it enqueues the copies
// and reductions on CUDA streams, ordered by events (comm/communicator.hpp's contract):
// - a post records the op's post event on the rank's compute stream (Communicator::stream());
// - a point-to-point copy is enqueued, by whoever would have copied on the host (the copy engine
//   or the receiver's wait), on the receiver's communication stream, after waits for the
//   sender's and the receiver's post events (data written, buffer free); then it records the
//   sender's event for that send and the receiver op's receive event;
// - a collective is enqueued whole by the last rank to post it: on each rank's communication
//   stream, waits for every rank's post event, that rank's copies or reduction kernel, and the
//   slot's event for (phase, rank); a second phase waits for the others' first-phase events;
// - the host waits only for the peers to post and the copies to be enqueued (bounded by the
//   timeout); the op's own wait (or its release, unwaited) then makes the compute stream wait for
//   the events of the work that touches its buffers: order_compute_stream().
// The events are pooled (the ops', the slots'), created only while warming up.
#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "comm/op_pool.hpp"
#include "comm/threads/threads_group.hpp"

namespace seqpar {

// The streams a device-memory op is ordered with: the rank's compute stream (set_stream's) and
// its communicator's communication stream. Unused on host memory.
struct OpStreams {
  threads_device::Stream compute = nullptr;
  threads_device::Stream comm = nullptr;
};

// Base of a posted operation: the bounded wait loop, abort and timeout handling.
class ThreadsOp : public PooledOp {
 public:
  // Waits for the op on the host, then orders the compute stream after it (device memory).
  Status wait(std::chrono::steady_clock::time_point deadline) final;
  bool finished() const { return finished_; }
  // Makes what progress is possible now. Called by this rank's thread with the domain lock held;
  // may release the lock around copies.
  virtual void progress(std::unique_lock<std::mutex>& lock) = 0;
  // The copy engine's hook, called on its thread with the domain lock held: performs one copy
  // this op is ready to receive, if any, and returns true if it did (releasing the lock around
  // the copy). It never finishes or fails the op; the owning thread's progress does that.
  virtual bool engine_copy(std::unique_lock<std::mutex>&) { return false; }

 protected:
  ThreadsOp(std::shared_ptr<ThreadsGroup> group, int rank);
  // Starts a post: the op is unfinished, with this timeout and these streams. Call with the
  // domain lock held.
  void begin(std::chrono::milliseconds timeout, const OpStreams& streams);
  // Adds the op to its thread's pending list. Call with the domain lock held, once posted.
  void register_pending();
  // Derived recycle() calls this first: leaves an unfinished op (so peers never touch its
  // buffers again), orders the compute stream after what was enqueued, and removes the op from
  // the pending list.
  void retire();
  // Withdraws from the operation after a failure: cancels what peers could still read and
  // waits for reads in flight. Called with the domain lock held.
  virtual void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) = 0;
  // What the op still waits for, for timeout messages. Called with the domain lock held.
  virtual std::string waiting_for() = 0;
  virtual std::string name() const = 0;
  // Device memory, once the op is finished (done, failed or withdrawn): makes the compute stream
  // wait for the events of the device work enqueued for the op, and lets go of what peers share
  // with it (a collective's slot). Once per post, on the owner's thread, with the domain lock.
  virtual Status order_compute_stream() { return Status::ok(); }

  void finish(Status status);
  void fail(std::unique_lock<std::mutex>& lock, Status status);  // abandon + finish

  bool on_device() const { return domain().device_memory; }
  ThreadsDomain& domain() const { return group_->domain(); }
  std::shared_ptr<ThreadsGroup> group_;
  int rank_;           // group rank
  OpStreams streams_;  // the post's

 private:
  void progress_thread(std::unique_lock<std::mutex>& lock);  // every pending op of this thread
  Status order_once();                                       // order_compute_stream, once

  std::chrono::milliseconds timeout_{0};
  bool finished_ = false;
  bool ordered_ = false;  // order_compute_stream ran for this post
  Status status_;
};

// A group of sends and receives.
class ThreadsExchangeOp final : public ThreadsOp {
 public:
  ThreadsExchangeOp(std::shared_ptr<ThreadsGroup> group, int rank);
  // With the domain lock held. Allocates nothing once the op and the channels have held as
  // many sends and receives before. A device error finishes the op with it, posting nothing.
  void post(std::span<const P2POp> ops, std::chrono::milliseconds timeout,
            const OpStreams& streams);
  void progress(std::unique_lock<std::mutex>& lock) override;
  bool engine_copy(std::unique_lock<std::mutex>& lock) override;

 protected:
  bool recycle() override;
  void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) override;
  std::string waiting_for() override;
  std::string name() const override { return "exchange"; }
  Status order_compute_stream() override;

 private:
  // events_: [kPostedEvent] recorded on the compute stream at the post, [kReceivedEvent]
  // recorded after each copy into this op's buffers (all on this rank's communication stream, so
  // its last record follows them all), [kFirstSendEvent + i] recorded after send i was read.
  static constexpr size_t kPostedEvent = 0, kReceivedEvent = 1, kFirstSendEvent = 2;

  struct Recv {
    int src;
    uint64_t seq;
    void* buffer;
    size_t bytes;
    bool done;
    bool engine_copying;  // the copy engine is filling `buffer` now
    bool copied;          // the data moved (device memory: the copy was enqueued)
  };
  struct Send {
    int dst;
    uint64_t seq;
    bool done;
    bool copied;  // the receiver read it (device memory: its copy was enqueued)
  };
  // Pulls one receive if its send is posted; false after a failure.
  bool pull(std::unique_lock<std::mutex>& lock, Recv& recv);
  // Copies a matched, posted send of the right size into `recv` (either thread).
  void copy_in(std::unique_lock<std::mutex>& lock, Channel& channel, Recv& recv);
  bool check_send(std::unique_lock<std::mutex>& lock, Send& send);
  // Device memory: reserves the events and records the post event; a failure finishes the op.
  Status prepare_device(size_t sends);
  // Moves `recv.bytes` from the matched send's `data` into `recv.buffer` (without the lock).
  Status move_bytes(const Recv& recv, const void* data, threads_device::Event ready,
                    threads_device::Event read);

  std::vector<Recv> recvs_;
  std::vector<Send> sends_;
  threads_device::EventList events_;  // device memory; see kPostedEvent
  Status device_error_;               // the first failed copy enqueue
  // Set when abandon() starts: the engine starts no new copy into this op from then on (abandon
  // may release the lock while it waits, and the op is not finished until it returns).
  bool withdrawing_ = false;
};

// One collective, met in the group's slot for its sequence number.
class ThreadsCollectiveOp final : public ThreadsOp {
 public:
  ThreadsCollectiveOp(std::shared_ptr<ThreadsGroup> group, int rank);
  // Collective number `seq` of the group; with the domain lock held. On device memory the last
  // rank to post enqueues every rank's work; a device error fails the collective on every rank.
  void post(uint64_t seq, CollectiveKind kind, const CollectiveArgs& args,
            std::chrono::milliseconds timeout, const OpStreams& streams);
  void progress(std::unique_lock<std::mutex>& lock) override;

  // After a successful split: this rank's new group and rank in it.
  std::shared_ptr<ThreadsGroup> split_group() const { return split_group_; }
  int split_rank() const { return split_rank_; }

 protected:
  void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) override;
  std::string waiting_for() override;
  std::string name() const override;
  bool recycle() override;
  Status order_compute_stream() override;

 private:
  // Where one rank's part of a phase moves its bytes: host memory now, or device work enqueued
  // on that rank's communication stream.
  struct Mover {
    threads_device::Stream device_stream = nullptr;
    bool on_device = false;
    Status copy(void* dst, const void* src, size_t bytes) const;
    Status reduce(std::span<const void* const> inputs, size_t first, size_t count, DType dtype,
                  ReduceOp op, void* dst) const;
  };

  CollectiveSlot& slot();
  int phase_count() const;
  // Group rank `rank`'s part of `phase` (host: this rank's, without the lock).
  Status run_phase(const CollectiveSlot& slot, int phase, int rank, const Mover& mover);
  Status check_matches(const CollectiveSlot& slot, const CollectiveArgs& args) const;
  Status check_all_to_all_sizes(const CollectiveSlot& slot, int rank) const;
  // Device memory, by the last rank to post: every rank's work of every phase, on its stream.
  Status enqueue_on_device(CollectiveSlot& slot);
  void join_split(CollectiveSlot& slot);
  void release_slot(CollectiveSlot& slot);  // this rank leaves the slot

  uint64_t seq_ = 0;
  CollectiveKind kind_ = CollectiveKind::kBarrier;
  int phase_ = 0;  // phases this rank has completed
  bool released_ = false;
  bool device_work_ = false;  // this post moves device memory (not a barrier or split)
  threads_device::EventList posted_event_;  // device memory: [0], the post event
  std::shared_ptr<ThreadsGroup> split_group_;
  int split_rank_ = -1;
  std::vector<const void*> reduce_inputs_;  // the ranks' send buffers, in rank order
  // This rank's all_to_all_v layout, which the slot's args point to.
  std::vector<size_t> send_bytes_, send_offsets_, recv_bytes_, recv_offsets_;
};

}  // namespace seqpar
