#pragma once
// Shared state of the threads backend (ranks are threads of one process): the domain (one
// mutex, condition variable and abort flag for a root group and every group split from it), the
// per-(src, dst) FIFOs of posted sends, and the slots where ranks meet for a collective.
// Internal to comm/; users reach it through threads_communicator.hpp.
#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

namespace seqpar {

class ThreadsOp;
class ThreadsGroup;

// One lock for a root group and all its descendants, so that a wait on any of them drives every
// pending operation of the waiting thread (no cross-group wait-order deadlocks).
struct ThreadsDomain {
  explicit ThreadsDomain(int ranks) : pending(static_cast<size_t>(ranks)) {}

  // kAborted for `op_name`, naming the rank that aborted and its reason. Call with mutex held.
  Status abort_status(const std::string& op_name) const;

  std::mutex mutex;
  std::condition_variable changed;  // notified on every state change
  bool aborted = false;
  int abort_rank = -1;  // domain rank
  std::string abort_reason;
  std::vector<std::vector<ThreadsOp*>> pending;  // by domain rank: posted, not yet retired
};

// One posted send, queued on its (src, dst) channel until both sides are finished with it.
struct PostedSend {
  enum class State { kPosted, kCopying, kDone, kCancelled, kMismatch };
  const void* data = nullptr;
  size_t bytes = 0;
  State state = State::kPosted;
  size_t receiver_bytes = 0;  // what the receiver expected, on kMismatch
  bool sender_finished = false;
  bool receiver_finished = false;
};

// Messages from one rank to another, matched in posting order by sequence number.
struct Channel {
  PostedSend* find(uint64_t seq);  // nullptr when send `seq` is not posted yet
  void pop_finished();             // drops leading sends both sides are finished with

  uint64_t first_seq = 0;  // sequence number of sends.front()
  uint64_t next_send_seq = 0;
  uint64_t next_recv_seq = 0;
  std::deque<PostedSend> sends;
};

enum class CollectiveKind : int {
  kAllToAllV = 0,
  kAllGather,
  kReduceScatter,
  kAllReduce,
  kBroadcast,
  kBarrier,
  kSplit
};
const char* collective_kind_name(CollectiveKind kind);

// What one rank passed to a collective. Immutable once posted.
struct CollectiveArgs {
  const void* send = nullptr;
  void* recv = nullptr;  // broadcast: the buffer
  size_t size = 0;       // bytes (all_gather, broadcast) or element count (reductions)
  DType dtype = DType::kF32;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
  std::vector<size_t> send_bytes, send_offsets, recv_bytes, recv_offsets;  // all_to_all_v
  int color = 0;  // split
  int key = 0;
};

// Where the ranks of a group meet for their n-th collective.
struct CollectiveSlot {
  CollectiveKind kind = CollectiveKind::kBarrier;
  std::vector<CollectiveArgs> args;  // by group rank
  std::vector<bool> posted_by;
  int posted = 0;
  std::array<int, 2> phase_done{};  // ranks done with each phase of pulling
  int active_copies = 0;            // ranks reading peers' buffers right now
  int released = 0;                 // ranks finished with the slot; erased at size()
  Status failure;                   // set once; every rank's wait then fails with it
  std::map<int, std::shared_ptr<ThreadsGroup>> split_children;  // by color
};

// Shared state of the P ranks of one threads communicator group.
class ThreadsGroup {
 public:
  ThreadsGroup(std::shared_ptr<ThreadsDomain> domain, std::vector<int> domain_ranks);

  int size() const { return static_cast<int>(domain_ranks_.size()); }
  ThreadsDomain& domain() { return *domain_; }
  const std::shared_ptr<ThreadsDomain>& shared_domain() const { return domain_; }
  int domain_rank(int group_rank) const { return domain_ranks_[static_cast<size_t>(group_rank)]; }
  Channel& channel(int src, int dst) {
    return channels_[static_cast<size_t>(src) * domain_ranks_.size() + static_cast<size_t>(dst)];
  }
  std::map<uint64_t, CollectiveSlot>& slots() { return slots_; }

 private:
  std::shared_ptr<ThreadsDomain> domain_;
  std::vector<int> domain_ranks_;  // group rank -> domain rank
  std::vector<Channel> channels_;  // [src * size + dst]
  std::map<uint64_t, CollectiveSlot> slots_;  // by collective sequence number
};

}  // namespace seqpar
