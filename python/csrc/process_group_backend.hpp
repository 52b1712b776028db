#pragma once
// A seqpar communicator over a torch.distributed process group (c10d::ProcessGroup): the
// seqpar::CommBackend the extension's plans run on. The whole group uses the process group's own
// collectives; a subgroup made by split() (hybrid's head and ring groups, tree's per-node groups)
// runs every operation as point-to-point messages of the same process group, in a tag space of
// its own, so no new c10d group (a collective over the whole world in c10d) is ever needed.
//
// Matching: seqpar issues operations in the same order on every rank; the k-th message from rank
// a to rank b of a communicator gets tag (communicator id, k) on both sides, so messages match
// whatever order the transport delivers them in. Tags lie at 2^30 and above, away from the small
// tags a program's own dist.send / dist.recv on the same group use. A communicator's id is 0 for
// the whole group; a split child takes the largest next id its members propose, so no two
// communicators a rank belongs to share one.
//
// Failure: once an operation fails (an error, a timeout), messages may be left unmatched, so the
// communicator and everything split from it refuse every later operation (kAborted, naming the
// first failure): a new process group is needed (gloo's is unusable after a timeout anyway).
#include <cstdint>
#include <memory>
#include <seqpar/seqpar.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <vector>

namespace seqpar_torch {

class ProcessGroupBackend : public seqpar::CommBackend {
 public:
  // Rank `rank` of the whole of `group`.
  explicit ProcessGroupBackend(c10::intrusive_ptr<c10d::ProcessGroup> group);

  seqpar::Status exchange(seqpar::Span<P2POp> ops, void** work) override;
  seqpar::Status all_to_all_v(const void* send, seqpar::Span<size_t> send_bytes,
                              seqpar::Span<size_t> send_offsets, void* recv,
                              seqpar::Span<size_t> recv_bytes, seqpar::Span<size_t> recv_offsets,
                              void** work) override;
  seqpar::Status all_gather(const void* send, void* recv, size_t bytes_per_rank,
                            void** work) override;
  seqpar::Status reduce_scatter(const void* send, void* recv, size_t count_per_rank, int32_t dtype,
                                ReduceOp op, void** work) override;
  seqpar::Status all_reduce(const void* send, void* recv, size_t count, int32_t dtype, ReduceOp op,
                            void** work) override;
  seqpar::Status broadcast(void* buffer, size_t bytes, int root, void** work) override;
  seqpar::Status barrier(void** work) override;
  seqpar::Status wait(void* work, int64_t timeout_ms) override;
  void discard(void* work) override;
  void abort(const char* message) override;
  bool can_split() const override { return true; }
  seqpar::StatusOr<Split> split(int color, int key) override;

  int rank() const { return rank_; }
  int size() const { return static_cast<int>(members_.size()); }

 private:
  struct Pending;  // posted c10d works, staging buffers, and what to do once they complete
  // What a communicator shares with the ones split from it.
  struct Shared {
    std::string failure;        // the first failed operation ("": none)
    uint32_t next_comm_id = 1;  // the smallest id this process can still give a split child
  };
  // A subgroup: members[i] is the process-group rank of subgroup rank i.
  ProcessGroupBackend(c10::intrusive_ptr<c10d::ProcessGroup> group, std::vector<int> members,
                      int rank, uint32_t id, std::shared_ptr<Shared> shared);

  // Runs an operation's body: refused once the group has failed; a failure marks it failed.
  template <class Body>
  seqpar::Status run_op(const char* op, Body&& body);
  seqpar::Status failed(seqpar::Status status);  // records the first failure, returns status
  int tag(uint32_t counter) const;

  bool whole() const { return id_ == 0; }
  void post_send(Pending& pending, const void* buffer, size_t bytes, int peer);
  void post_recv(Pending& pending, void* buffer, size_t bytes, int peer);
  // The point-to-point collectives of a subgroup.
  void p2p_all_gather(Pending& pending, const void* send, void* recv, size_t bytes_per_rank);
  seqpar::Status finish(std::unique_ptr<Pending> pending, void** work);
  seqpar::Status run_blocking(std::unique_ptr<Pending> pending);

  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::vector<int> members_;
  int rank_ = 0;
  uint32_t id_ = 0;  // tag space: 0 for the whole group, a split child's own otherwise
  std::vector<uint32_t> sent_, received_;  // messages so far, per peer (the tags' counters)
  std::shared_ptr<Shared> shared_;
};

}  // namespace seqpar_torch
