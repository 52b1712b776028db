#pragma once
// Posted operations of the threads backend (pull model: each rank copies into its own receive
// buffers, from its peers' send buffers, inside its own waits). Any wait of a thread drives all
// pending operations of that thread, so ranks may wait on their operations in any order.
#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "comm/threads_group.hpp"

namespace seqpar {

// Base of a posted operation: the bounded wait loop, abort and timeout handling.
class ThreadsOp : public PendingOp {
 public:
  Status wait(std::chrono::steady_clock::time_point deadline) final;
  bool finished() const { return finished_; }
  // Makes what progress is possible now. Called by this rank's thread with the domain lock held;
  // may release the lock around copies.
  virtual void progress(std::unique_lock<std::mutex>& lock) = 0;

 protected:
  ThreadsOp(std::shared_ptr<ThreadsGroup> group, int rank, std::chrono::milliseconds timeout);
  // Adds the op to its thread's pending list. Call with the domain lock held, once posted.
  void register_pending();
  // Derived destructors call this: leaves an unfinished op (so peers never touch freed
  // buffers) and removes it from the pending list.
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

  std::chrono::milliseconds timeout_;
  bool finished_ = false;
  Status status_;
};

// A group of sends and receives.
class ThreadsExchangeOp final : public ThreadsOp {
 public:
  ThreadsExchangeOp(std::shared_ptr<ThreadsGroup> group, int rank,
                    std::chrono::milliseconds timeout);
  ~ThreadsExchangeOp() override;
  void post(std::span<const P2POp> ops);  // with the domain lock held
  void progress(std::unique_lock<std::mutex>& lock) override;

 protected:
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
  };
  struct Send {
    int dst;
    uint64_t seq;
    bool done;
  };
  // Pulls one receive if its send is posted; false after a failure.
  bool pull(std::unique_lock<std::mutex>& lock, Recv& recv);
  bool check_send(std::unique_lock<std::mutex>& lock, Send& send);

  std::vector<Recv> recvs_;
  std::vector<Send> sends_;
};

// One collective, met in the group's slot for its sequence number.
class ThreadsCollectiveOp final : public ThreadsOp {
 public:
  ThreadsCollectiveOp(std::shared_ptr<ThreadsGroup> group, int rank,
                      std::chrono::milliseconds timeout, uint64_t seq, CollectiveKind kind);
  ~ThreadsCollectiveOp() override;
  void post(CollectiveArgs args);  // with the domain lock held
  void progress(std::unique_lock<std::mutex>& lock) override;

  // After a successful split: this rank's new group and rank in it.
  std::shared_ptr<ThreadsGroup> split_group() const { return split_group_; }
  int split_rank() const { return split_rank_; }

 protected:
  void abandon(std::unique_lock<std::mutex>& lock, const Status& reason) override;
  std::string waiting_for() override;
  std::string name() const override;

 private:
  CollectiveSlot& slot();
  int phase_count() const;
  Status run_phase(const CollectiveSlot& slot, int phase);  // without the lock
  Status check_matches(const CollectiveSlot& slot, const CollectiveArgs& args) const;
  void join_split(CollectiveSlot& slot);
  void release(CollectiveSlot& slot);

  uint64_t seq_;
  CollectiveKind kind_;
  int phase_ = 0;  // phases this rank has completed
  bool released_ = false;
  std::shared_ptr<ThreadsGroup> split_group_;
  int split_rank_ = -1;
};

}  // namespace seqpar
