#pragma once
// Posted operations of the threads backend (pull model: each rank copies into its own receive
// buffers, from its peers' send buffers, inside its own waits; point-to-point copies are also
// taken by the domain's copy engine as soon as both sides are posted). Any wait of a thread drives
// all pending operations of that thread, so ranks may wait on their operations in any order. Ops
// come from their communicator's OpPool: a post fills one, its release withdraws and clears it.
#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "comm/op_pool.hpp"
#include "comm/threads/threads_group.hpp"

namespace seqpar {

// Base of a posted operation: the bounded wait loop, abort and timeout handling.
class ThreadsOp : public PooledOp {
 public:
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
  // Starts a post: the op is unfinished, with this timeout. Call with the domain lock held.
  void begin(std::chrono::milliseconds timeout);
  // Adds the op to its thread's pending list. Call with the domain lock held, once posted.
  void register_pending();
  // Derived recycle() calls this first: leaves an unfinished op (so peers never touch its
  // buffers again) and removes it from the pending list.
  void retire();
  // Withdraws from the operation after a failure: cancels what peers could still read and
  // waits for reads in flight. Called with the domain lock held.
  virtual void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) = 0;
  // What the op still waits for, for timeout messages. Called with the domain lock held.
  virtual std::string waiting_for() = 0;
  virtual std::string name() const = 0;

  void finish(Status status);
  void fail(std::unique_lock<std::mutex>& lock, Status status);  // abandon + finish

  ThreadsDomain& domain() { return group_->domain(); }
  std::shared_ptr<ThreadsGroup> group_;
  int rank_;  // group rank

 private:
  void progress_thread(std::unique_lock<std::mutex>& lock);  // every pending op of this thread

  std::chrono::milliseconds timeout_{0};
  bool finished_ = false;
  Status status_;
};

// A group of sends and receives.
class ThreadsExchangeOp final : public ThreadsOp {
 public:
  ThreadsExchangeOp(std::shared_ptr<ThreadsGroup> group, int rank);
  // With the domain lock held. Allocates nothing once the op and the channels have held as
  // many sends and receives before.
  void post(std::span<const P2POp> ops, std::chrono::milliseconds timeout);
  void progress(std::unique_lock<std::mutex>& lock) override;
  bool engine_copy(std::unique_lock<std::mutex>& lock) override;

 protected:
  bool recycle() override;
  void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) override;
  std::string waiting_for() override;
  std::string name() const override { return "exchange"; }

 private:
  struct Recv {
    int src;
    uint64_t seq;
    void* buffer;
    size_t bytes;
    bool done;
    bool engine_copying;  // the copy engine is filling `buffer` now
  };
  struct Send {
    int dst;
    uint64_t seq;
    bool done;
  };
  // Pulls one receive if its send is posted; false after a failure.
  bool pull(std::unique_lock<std::mutex>& lock, Recv& recv);
  // Copies a matched, posted send of the right size into `recv` (either thread).
  void copy_in(std::unique_lock<std::mutex>& lock, Channel& channel, Recv& recv);
  bool check_send(std::unique_lock<std::mutex>& lock, Send& send);

  std::vector<Recv> recvs_;
  std::vector<Send> sends_;
  // Set when abandon() starts: the engine starts no new copy into this op from then on (abandon
  // may release the lock while it waits, and the op is not finished until it returns).
  bool withdrawing_ = false;
};

// One collective, met in the group's slot for its sequence number.
class ThreadsCollectiveOp final : public ThreadsOp {
 public:
  ThreadsCollectiveOp(std::shared_ptr<ThreadsGroup> group, int rank);
  // Collective number `seq` of the group; with the domain lock held.
  void post(uint64_t seq, CollectiveKind kind, const CollectiveArgs& args,
            std::chrono::milliseconds timeout);
  void progress(std::unique_lock<std::mutex>& lock) override;

  // After a successful split: this rank's new group and rank in it.
  std::shared_ptr<ThreadsGroup> split_group() const { return split_group_; }
  int split_rank() const { return split_rank_; }

 protected:
  void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) override;
  std::string waiting_for() override;
  std::string name() const override;
  bool recycle() override;

 private:
  CollectiveSlot& slot();
  int phase_count() const;
  Status run_phase(const CollectiveSlot& slot, int phase);  // without the lock
  Status check_matches(const CollectiveSlot& slot, const CollectiveArgs& args) const;
  void join_split(CollectiveSlot& slot);
  void release_slot(CollectiveSlot& slot);  // this rank leaves the slot

  uint64_t seq_ = 0;
  CollectiveKind kind_ = CollectiveKind::kBarrier;
  int phase_ = 0;  // phases this rank has completed
  bool released_ = false;
  std::shared_ptr<ThreadsGroup> split_group_;
  int split_rank_ = -1;
  std::vector<const void*> reduce_inputs_;  // the ranks' send buffers, in rank order
  // This rank's all_to_all_v layout, which the slot's args point to.
  std::vector<size_t> send_bytes_, send_offsets_, recv_bytes_, recv_offsets_;
};

}  // namespace seqpar
