// ThreadsCollectiveOp: ranks post their arguments in the slot of the collective's sequence
// number; once all have posted, each rank pulls what it needs into its own receive buffer, in
// one or two phases, and returns only after every rank finished reading its buffers. On device
// memory the last rank to post enqueues every rank's pulls (copies, and the reduction kernel) on
// that rank's communication stream instead, ordered by events (threads_ops.hpp), and each rank's
// wait returns once they are enqueued.
#include <algorithm>
#include <cstring>
#include <utility>

#include "comm/host_reduce.hpp"
#include "comm/threads/threads_ops.hpp"

namespace seqpar {
namespace {

// Elements [first, last) of a count-element buffer that group rank `part` reduces in all_reduce.
std::pair<size_t, size_t> all_reduce_part(size_t count, int part, int parts) {
  const size_t p = static_cast<size_t>(parts);
  const size_t i = static_cast<size_t>(part);
  return {count * i / p, count * (i + 1) / p};
}

// Copies `values` into `storage` (keeping its capacity) and returns the copy.
std::span<const size_t> keep_copy(std::span<const size_t> values, std::vector<size_t>& storage) {
  storage.assign(values.begin(), values.end());
  return storage;
}

char* byte_ptr(void* p, size_t offset) { return static_cast<char*>(p) + offset; }
const char* byte_ptr(const void* p, size_t offset) { return static_cast<const char*>(p) + offset; }

}  // namespace

ThreadsCollectiveOp::ThreadsCollectiveOp(std::shared_ptr<ThreadsGroup> group, int rank)
    : ThreadsOp(std::move(group), rank) {
  // On device memory any rank's op may be the last poster that reduces for all: room for every
  // rank's input from the start, so a warm op never grows.
  reduce_inputs_.reserve(static_cast<size_t>(group_->size()));
}

std::string ThreadsCollectiveOp::name() const {
  return str_cat(collective_kind_name(kind_), " #", seq_);
}

CollectiveSlot& ThreadsCollectiveOp::slot() { return group_->slot(seq_); }

Status ThreadsCollectiveOp::Mover::copy(void* dst, const void* src, size_t bytes) const {
  if (on_device) return threads_device::copy(dst, src, bytes, device_stream);
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return Status::ok();
}

Status ThreadsCollectiveOp::Mover::reduce(std::span<const void* const> inputs, size_t first,
                                          size_t count, DType dtype, ReduceOp op, void* dst) const {
  if (on_device) {
    return threads_device::reduce_in_order(inputs, first, count, dtype, op, dst, device_stream);
  }
  reduce_in_order(inputs, first, count, dtype, op, dst);
  return Status::ok();
}

int ThreadsCollectiveOp::phase_count() const {
  switch (kind_) {
    case CollectiveKind::kBarrier:
    case CollectiveKind::kSplit:
      return 0;
    case CollectiveKind::kAllReduce:
      return 2;  // reduce own part, then gather the others' parts
    default:
      return 1;
  }
}

Status ThreadsCollectiveOp::check_matches(const CollectiveSlot& slot,
                                          const CollectiveArgs& args) const {
  if (slot.kind != kind_) {
    return SEQPAR_FAIL(StatusCode::kMismatch, "threads collective #", seq_, ": rank ", rank_,
                       " posted ", collective_kind_name(kind_), " but another rank posted ",
                       collective_kind_name(slot.kind));
  }
  for (size_t q = 0; q < slot.args.size(); ++q) {
    if (!slot.posted_by[q]) continue;
    const CollectiveArgs& other = slot.args[q];
    bool same = true;
    switch (kind_) {
      case CollectiveKind::kAllGather:
        same = other.size == args.size;
        break;
      case CollectiveKind::kBroadcast:
        same = other.size == args.size && other.root == args.root;
        break;
      case CollectiveKind::kReduceScatter:
      case CollectiveKind::kAllReduce:
        same = other.size == args.size && other.dtype == args.dtype && other.op == args.op;
        break;
      default:
        break;
    }
    if (!same) {
      return SEQPAR_FAIL(StatusCode::kMismatch, "threads ", name(), ": rank ", rank_, " and rank ",
                         q, " disagree on size, dtype, reduce op or root");
    }
    break;  // the posted ranks already agree with each other
  }
  return Status::ok();
}

void ThreadsCollectiveOp::post(uint64_t seq, CollectiveKind kind, const CollectiveArgs& args,
                               std::chrono::milliseconds timeout, const OpStreams& streams) {
  begin(timeout, streams);
  seq_ = seq;
  kind_ = kind;
  phase_ = 0;
  released_ = false;
  device_work_ = on_device() && phase_count() > 0;
  // Device memory: our part starts after the work enqueued so far on our compute stream.
  Status device_ready;
  if (device_work_) {
    device_ready = posted_event_.reserve(1);
    if (device_ready.is_ok())
      device_ready = threads_device::record(posted_event_[0], streams.compute);
  }
  CollectiveSlot& s = group_->open_slot(seq_, kind_);
  if (s.failure.is_ok()) s.failure = check_matches(s, args);
  if (s.failure.is_ok()) s.failure = std::move(device_ready);
  CollectiveArgs& posted = s.args[static_cast<size_t>(rank_)];
  posted = args;
  posted.send_bytes = keep_copy(args.send_bytes, send_bytes_);
  posted.send_offsets = keep_copy(args.send_offsets, send_offsets_);
  posted.recv_bytes = keep_copy(args.recv_bytes, recv_bytes_);
  posted.recv_offsets = keep_copy(args.recv_offsets, recv_offsets_);
  if (device_work_) {
    posted.stream = streams.comm;
    posted.posted = posted_event_[0];
  }
  s.posted_by[static_cast<size_t>(rank_)] = true;
  s.posted += 1;
  if (device_work_ && s.posted == group_->size() && s.failure.is_ok()) {
    s.failure = enqueue_on_device(s);
    s.enqueued = s.failure.is_ok();
  }
  register_pending();
  domain().changed.notify_all();
}

Status ThreadsCollectiveOp::check_all_to_all_sizes(const CollectiveSlot& s, int rank) const {
  const CollectiveArgs& mine = s.args[static_cast<size_t>(rank)];
  for (int q = 0; q < group_->size(); ++q) {
    const size_t bytes = mine.recv_bytes[static_cast<size_t>(q)];
    const size_t sent = s.args[static_cast<size_t>(q)].send_bytes[static_cast<size_t>(rank)];
    if (bytes != sent) {
      return SEQPAR_FAIL(StatusCode::kMismatch, "threads ", name(), ": rank ", rank, " expects ",
                         bytes, " bytes from rank ", q, " which sends ", sent);
    }
  }
  return Status::ok();
}

Status ThreadsCollectiveOp::run_phase(const CollectiveSlot& s, int phase, int rank,
                                      const Mover& mover) {
  const int p = group_->size();
  const CollectiveArgs& mine = s.args[static_cast<size_t>(rank)];
  switch (kind_) {
    case CollectiveKind::kAllToAllV:
      SEQPAR_RETURN_IF_ERROR(check_all_to_all_sizes(s, rank));
      for (int q = 0; q < p; ++q) {
        const CollectiveArgs& from = s.args[static_cast<size_t>(q)];
        const size_t bytes = mine.recv_bytes[static_cast<size_t>(q)];
        if (bytes == 0) continue;
        SEQPAR_RETURN_IF_ERROR(
            mover.copy(byte_ptr(mine.recv, mine.recv_offsets[static_cast<size_t>(q)]),
                       byte_ptr(from.send, from.send_offsets[static_cast<size_t>(rank)]), bytes));
      }
      return Status::ok();
    case CollectiveKind::kAllGather:
      for (int q = 0; q < p; ++q) {
        char* dst = byte_ptr(mine.recv, static_cast<size_t>(q) * mine.size);
        const void* src = s.args[static_cast<size_t>(q)].send;
        if (mine.size > 0 && dst != src) SEQPAR_RETURN_IF_ERROR(mover.copy(dst, src, mine.size));
      }
      return Status::ok();
    case CollectiveKind::kBroadcast:
      if (rank != mine.root && mine.size > 0) {
        return mover.copy(mine.recv, s.args[static_cast<size_t>(mine.root)].recv, mine.size);
      }
      return Status::ok();
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllReduce: {
      const size_t element = dtype_size(mine.dtype);
      if (kind_ == CollectiveKind::kAllReduce && phase == 1) {
        for (int q = 0; q < p; ++q) {
          const auto [first, last] = all_reduce_part(mine.size, q, p);
          if (q == rank || first == last) continue;
          SEQPAR_RETURN_IF_ERROR(
              mover.copy(byte_ptr(mine.recv, first * element),
                         byte_ptr(s.args[static_cast<size_t>(q)].recv, first * element),
                         (last - first) * element));
        }
        return Status::ok();
      }
      reduce_inputs_.resize(static_cast<size_t>(p));
      for (size_t q = 0; q < reduce_inputs_.size(); ++q) reduce_inputs_[q] = s.args[q].send;
      if (kind_ == CollectiveKind::kReduceScatter) {
        return mover.reduce(reduce_inputs_, static_cast<size_t>(rank) * mine.size, mine.size,
                            mine.dtype, mine.op, mine.recv);
      }
      const auto [first, last] = all_reduce_part(mine.size, rank, p);
      if (first == last) return Status::ok();
      return mover.reduce(reduce_inputs_, first, last - first, mine.dtype, mine.op,
                          byte_ptr(mine.recv, first * element));
    }
    case CollectiveKind::kBarrier:
    case CollectiveKind::kSplit:
      break;
  }
  return Status::ok();
}

Status ThreadsCollectiveOp::enqueue_on_device(CollectiveSlot& s) {
  const int p = group_->size();
  const size_t ranks = static_cast<size_t>(p);
  const int phases = phase_count();
  if (kind_ == CollectiveKind::kAllToAllV) {  // refuse before anything is enqueued
    for (int q = 0; q < p; ++q) SEQPAR_RETURN_IF_ERROR(check_all_to_all_sizes(s, q));
  }
  // Made with the slot (ThreadsGroup::open_slot); this only checks there are enough.
  SEQPAR_RETURN_IF_ERROR(s.done_events.reserve(static_cast<size_t>(phases) * ranks));
  for (int phase = 0; phase < phases; ++phase) {
    for (size_t q = 0; q < ranks; ++q) {
      const Mover mover{s.args[q].stream, true};
      // Phase 0 reads every rank's buffers once each rank's earlier work is done; a later phase
      // reads what the other ranks' previous phase wrote.
      for (size_t k = 0; k < ranks; ++k) {
        if (phase == 0) {
          SEQPAR_RETURN_IF_ERROR(
              threads_device::stream_wait(mover.device_stream, s.args[k].posted));
        } else if (k != q) {
          SEQPAR_RETURN_IF_ERROR(threads_device::stream_wait(
              mover.device_stream, s.done_events[static_cast<size_t>(phase - 1) * ranks + k]));
        }
      }
      SEQPAR_RETURN_IF_ERROR(run_phase(s, phase, static_cast<int>(q), mover));
      SEQPAR_RETURN_IF_ERROR(threads_device::record(
          s.done_events[static_cast<size_t>(phase) * ranks + q], mover.device_stream));
    }
  }
  return Status::ok();
}

Status ThreadsCollectiveOp::order_compute_stream() {
  if (!device_work_ || released_) return Status::ok();
  CollectiveSlot& s = slot();
  Status status;
  if (s.enqueued) {
    // Our later work follows our receives and every rank's reads of our buffers: all ranks'
    // last-phase events.
    const size_t ranks = static_cast<size_t>(group_->size());
    const size_t last = static_cast<size_t>(phase_count() - 1) * ranks;
    for (size_t k = 0; k < ranks && status.is_ok(); ++k) {
      status = threads_device::stream_wait(streams_.compute, s.done_events[last + k]);
    }
  }
  release_slot(s);
  return status;
}

void ThreadsCollectiveOp::join_split(CollectiveSlot& s) {
  const int color = s.args[static_cast<size_t>(rank_)].color;
  std::vector<std::pair<int, int>> members;  // (key, parent rank) of this color
  for (int q = 0; q < group_->size(); ++q) {
    const CollectiveArgs& a = s.args[static_cast<size_t>(q)];
    if (a.color == color) members.emplace_back(a.key, q);
  }
  std::sort(members.begin(), members.end());
  std::shared_ptr<ThreadsGroup>& child = s.split_children[color];
  if (child == nullptr) {
    std::vector<int> domain_ranks;
    for (const auto& member : members) domain_ranks.push_back(group_->domain_rank(member.second));
    child = std::make_shared<ThreadsGroup>(group_->shared_domain(), std::move(domain_ranks));
  }
  split_group_ = child;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].second == rank_) split_rank_ = static_cast<int>(i);
  }
}

void ThreadsCollectiveOp::release_slot(CollectiveSlot& s) {
  released_ = true;
  s.released += 1;
  if (s.released == group_->size()) group_->close_slot(seq_);
  domain().changed.notify_all();
}

void ThreadsCollectiveOp::progress(std::unique_lock<std::mutex>& lock) {
  CollectiveSlot& s = slot();
  if (device_work_) {  // the last poster enqueued it all; the slot goes in order_compute_stream
    if (!s.failure.is_ok()) {
      fail(lock, s.failure);
    } else if (s.enqueued) {
      finish(Status::ok());
    }
    return;
  }
  const int p = group_->size();
  const int phases = phase_count();
  while (s.failure.is_ok() && s.posted == p && phase_ < phases &&
         (phase_ == 0 || s.phase_done[static_cast<size_t>(phase_ - 1)] == p)) {
    if (domain().aborted) return;
    s.active_copies += 1;
    lock.unlock();
    Status status = run_phase(s, phase_, rank_, Mover{});
    lock.lock();
    s.active_copies -= 1;
    if (!status.is_ok() && s.failure.is_ok()) s.failure = status;
    s.phase_done[static_cast<size_t>(phase_)] += 1;
    phase_ += 1;
    domain().changed.notify_all();
  }
  if (!s.failure.is_ok()) {
    fail(lock, s.failure);
    return;
  }
  if (s.posted < p || phase_ < phases) return;
  if (phases > 0 && s.phase_done[static_cast<size_t>(phases - 1)] < p) return;
  if (kind_ == CollectiveKind::kSplit) join_split(s);
  release_slot(s);
  finish(Status::ok());
}

void ThreadsCollectiveOp::abandon(std::unique_lock<std::mutex>& lock, const Status& reason) {
  if (released_) return;
  CollectiveSlot& s = slot();
  // Device work already enqueued completes on the device for every rank: order_compute_stream
  // orders our compute stream after it and lets go of the slot.
  if (device_work_ && s.enqueued) return;
  if (s.failure.is_ok()) {
    s.failure = Status(reason.code(), str_cat("threads ", name(), " was abandoned by rank ", rank_,
                                              ": ", reason.message()));
  }
  domain().changed.notify_all();
  // Peers reading our buffers right now finish before we hand them back to the caller.
  domain().changed.wait(lock, [&] { return s.active_copies == 0; });
  release_slot(s);
}

bool ThreadsCollectiveOp::recycle() {
  retire();
  split_group_.reset();
  split_rank_ = -1;
  return true;
}

std::string ThreadsCollectiveOp::waiting_for() {
  const CollectiveSlot& s = slot();
  std::string missing;
  for (size_t q = 0; q < s.posted_by.size(); ++q) {
    if (!s.posted_by[q]) missing += str_cat(missing.empty() ? "" : ", ", q);
  }
  if (!missing.empty())
    return str_cat("ranks [", missing, "] of ", group_->size(), " have not posted it");
  return "not every rank has waited on it yet";
}

}  // namespace seqpar
