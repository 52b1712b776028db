#pragma once
// Shared state of the threads backend (ranks are threads of one process): the domain (one
// mutex, condition variable and abort flag for a root group and every group split from it), the
// per-(src, dst) FIFOs of posted sends, and the slots where ranks meet for a collective. Both
// reuse their storage, so steady traffic allocates nothing. A domain made for a device moves
// device memory: the posted sends and collective arguments then also carry the CUDA streams and
// events their copies are ordered with (threads_ops.hpp says how).
// Internal to comm/; users reach it through threads_communicator.hpp.
#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/threads/threads_device.hpp"

namespace seqpar {

class ThreadsOp;
class ThreadsGroup;

// False when SEQPAR_THREADS_COPY_ENGINE=0: new domains then copy only inside the ranks' waits.
bool threads_copy_engine_enabled();

// One lock for a root group and all its descendants, so that a wait on any of them drives every
// pending operation of the waiting thread (no cross-group wait-order deadlocks).
// The domain also runs the copy engine (comm/threads/threads_copy_engine.cpp): one background
// thread that performs point-to-point copies whose send and receive are both posted, so a transfer
// proceeds while the ranks' threads compute, as a DMA engine's would. A waiting rank still copies
// what the engine has not started, so the engine only ever adds progress.
struct ThreadsDomain {
  // copy_engine: start the engine thread (make_threads_communicators: unless
  // SEQPAR_THREADS_COPY_ENGINE=0). cuda_device: kHostMemory, or the CUDA device whose memory the
  // buffers are (copies are then enqueued on its streams instead of made by the host).
  static constexpr int kHostMemory = -1;
  ThreadsDomain(int ranks, bool copy_engine, int cuda_device);
  ~ThreadsDomain();  // stops and joins the engine
  ThreadsDomain(const ThreadsDomain&) = delete;
  ThreadsDomain& operator=(const ThreadsDomain&) = delete;

  // kAborted for `op_name`, naming the rank that aborted and its reason. Call with mutex held.
  Status abort_status(const std::string& op_name) const;

  const int cuda_device;     // kHostMemory on host memory
  const bool device_memory;  // cuda_device != kHostMemory
  std::mutex mutex;
  std::condition_variable changed;  // notified on every state change
  bool aborted = false;
  int abort_rank = -1;  // domain rank
  std::string abort_reason;
  std::vector<std::vector<ThreadsOp*>> pending;  // by domain rank: posted, not yet retired

 private:
  void run_copy_engine();
  // One copy for some rank's pending op, if one is ready; true if it copied (the lock was
  // released meanwhile). Ranks are scanned round robin from engine_next_rank_.
  bool engine_copy_one(std::unique_lock<std::mutex>& lock);

  bool engine_stopping_ = false;
  size_t engine_next_rank_ = 0;
  std::thread engine_;
};

// One posted send, queued on its (src, dst) channel until both sides are finished with it. On
// device memory, kDone means the copy is enqueued (on the receiver's communication stream).
struct PostedSend {
  enum class State { kPosted, kCopying, kDone, kCancelled, kMismatch };
  const void* data = nullptr;
  size_t bytes = 0;
  // Device memory: the sender's post event (its data is written once the event is reached) and
  // the sender's event for this send, which the copy records once it has read the data.
  threads_device::Event ready = nullptr;
  threads_device::Event read = nullptr;
  State state = State::kPosted;
  size_t receiver_bytes = 0;  // what the receiver expected, on kMismatch
  bool sender_finished = false;
  bool receiver_finished = false;
};

// Messages from one rank to another, matched in posting order by sequence number. The sends
// not yet finished by both sides live in a ring that only grows (doubling, when more are in
// flight than ever before), so steady traffic allocates nothing. Only rank src posts, so a
// record moves only inside src's own post: other ranks must find a record again by its
// sequence number after releasing the domain lock.
class Channel {
 public:
  static constexpr size_t kInitialCapacity = 4;  // sends in flight before the first growth

  Channel() : ring_(kInitialCapacity) {}
  // Returns the send's sequence number. ready, read: PostedSend's (nullptr on host memory).
  uint64_t post(const void* data, size_t bytes, threads_device::Event ready,
                threads_device::Event read);
  PostedSend* find(uint64_t seq);  // nullptr when send `seq` is not posted yet or was dropped
  void pop_finished();             // drops leading sends both sides are finished with
  uint64_t take_recv_seq() { return next_recv_seq_++; }

 private:
  PostedSend& at(uint64_t seq) { return ring_[static_cast<size_t>(seq % ring_.size())]; }
  void grow();

  std::vector<PostedSend> ring_;  // send `seq` at ring_[seq % ring_.size()]
  uint64_t first_seq_ = 0;        // oldest send still held
  uint64_t next_send_seq_ = 0;    // sends [first_seq_, next_send_seq_) are held
  uint64_t next_recv_seq_ = 0;
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
  // all_to_all_v layout, one entry per rank: as handed to a post, the caller's; in the slot, the
  // posting op's own copies (they live until that op is released).
  std::span<const size_t> send_bytes, send_offsets, recv_bytes, recv_offsets;
  int color = 0;  // split
  int key = 0;
  // Device memory: the poster's communication stream, where its part of the work is enqueued,
  // and its post event (recorded on its compute stream when it posted).
  threads_device::Stream stream = nullptr;
  threads_device::Event posted = nullptr;
};

// Where the ranks of a group meet for their n-th collective.
struct CollectiveSlot {
  // Readies a new or recycled slot for a collective of `new_kind` over `ranks` ranks.
  void reset(CollectiveKind new_kind, size_t ranks);

  CollectiveKind kind = CollectiveKind::kBarrier;
  std::vector<CollectiveArgs> args;  // by group rank
  std::vector<bool> posted_by;
  int posted = 0;
  std::array<int, 2> phase_done{};  // ranks done with each phase of pulling
  int active_copies = 0;            // ranks reading peers' buffers right now
  int released = 0;                 // ranks finished with the slot; erased at size()
  Status failure;                   // set once; every rank's wait then fails with it
  std::map<int, std::shared_ptr<ThreadsGroup>> split_children;  // by color
  // Device memory: every rank's work is enqueued (by the last rank to post), and the events that
  // mark its end, [phase * ranks + rank], recorded on that rank's communication stream. Made
  // with the slot and kept when it is recycled; a slot is reused only once every rank has made
  // its compute stream wait on them.
  bool enqueued = false;
  threads_device::EventList done_events;
};

// Shared state of the P ranks of one threads communicator group.
class ThreadsGroup {
 public:
  // Slots made up front: collectives open at once (over all ranks) before another is made.
  static constexpr uint64_t kInitialSpareSlots = 4;
  static constexpr size_t kMaxPhases = 2;  // of a collective (all_reduce: reduce, then gather)

  ThreadsGroup(std::shared_ptr<ThreadsDomain> domain, std::vector<int> domain_ranks);

  int size() const { return static_cast<int>(domain_ranks_.size()); }
  ThreadsDomain& domain() { return *domain_; }
  const std::shared_ptr<ThreadsDomain>& shared_domain() const { return domain_; }
  int domain_rank(int group_rank) const { return domain_ranks_[static_cast<size_t>(group_rank)]; }
  Channel& channel(int src, int dst) {
    return channels_[static_cast<size_t>(src) * domain_ranks_.size() + static_cast<size_t>(dst)];
  }
  // The slot of collective `seq`, opened by the first rank to post it: a recycled slot when
  // one is spare, so steady collectives allocate nothing. Call with the domain lock held.
  CollectiveSlot& open_slot(uint64_t seq, CollectiveKind kind);
  CollectiveSlot& slot(uint64_t seq) { return slots_.at(seq); }
  // Once every rank released slot `seq`: keeps it as a spare.
  void close_slot(uint64_t seq);

 private:
  using SlotMap = std::map<uint64_t, CollectiveSlot>;

  std::shared_ptr<ThreadsDomain> domain_;
  std::vector<int> domain_ranks_;  // group rank -> domain rank
  std::vector<Channel> channels_;  // [src * size + dst]
  SlotMap slots_;                  // open slots, by collective sequence number
  std::vector<SlotMap::node_type> spare_slots_;
};

}  // namespace seqpar
