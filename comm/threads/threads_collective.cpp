// ThreadsCollectiveOp: ranks post their arguments in the slot of the collective's sequence
// number; once all have posted, each rank pulls what it needs into its own receive buffer, in
// one or two phases, and returns only after every rank finished reading its buffers.
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
    : ThreadsOp(std::move(group), rank) {}

std::string ThreadsCollectiveOp::name() const {
  return str_cat(collective_kind_name(kind_), " #", seq_);
}

CollectiveSlot& ThreadsCollectiveOp::slot() { return group_->slot(seq_); }

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
                               std::chrono::milliseconds timeout) {
  begin(timeout);
  seq_ = seq;
  kind_ = kind;
  phase_ = 0;
  released_ = false;
  CollectiveSlot& s = group_->open_slot(seq_, kind_);
  if (s.failure.is_ok()) s.failure = check_matches(s, args);
  CollectiveArgs& posted = s.args[static_cast<size_t>(rank_)];
  posted = args;
  posted.send_bytes = keep_copy(args.send_bytes, send_bytes_);
  posted.send_offsets = keep_copy(args.send_offsets, send_offsets_);
  posted.recv_bytes = keep_copy(args.recv_bytes, recv_bytes_);
  posted.recv_offsets = keep_copy(args.recv_offsets, recv_offsets_);
  s.posted_by[static_cast<size_t>(rank_)] = true;
  s.posted += 1;
  register_pending();
  domain().changed.notify_all();
}

Status ThreadsCollectiveOp::run_phase(const CollectiveSlot& s, int phase) {
  const int p = group_->size();
  const CollectiveArgs& mine = s.args[static_cast<size_t>(rank_)];
  switch (kind_) {
    case CollectiveKind::kAllToAllV:
      for (int q = 0; q < p; ++q) {
        const CollectiveArgs& from = s.args[static_cast<size_t>(q)];
        const size_t bytes = mine.recv_bytes[static_cast<size_t>(q)];
        const size_t sent = from.send_bytes[static_cast<size_t>(rank_)];
        if (bytes != sent) {
          return SEQPAR_FAIL(StatusCode::kMismatch, "threads ", name(), ": rank ", rank_,
                             " expects ", bytes, " bytes from rank ", q, " which sends ", sent);
        }
        if (bytes == 0) continue;
        std::memcpy(byte_ptr(mine.recv, mine.recv_offsets[static_cast<size_t>(q)]),
                    byte_ptr(from.send, from.send_offsets[static_cast<size_t>(rank_)]), bytes);
      }
      return Status::ok();
    case CollectiveKind::kAllGather:
      for (int q = 0; q < p; ++q) {
        char* dst = byte_ptr(mine.recv, static_cast<size_t>(q) * mine.size);
        const void* src = s.args[static_cast<size_t>(q)].send;
        if (mine.size > 0 && dst != src) std::memcpy(dst, src, mine.size);
      }
      return Status::ok();
    case CollectiveKind::kBroadcast:
      if (rank_ != mine.root && mine.size > 0)
        std::memcpy(mine.recv, s.args[static_cast<size_t>(mine.root)].recv, mine.size);
      return Status::ok();
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllReduce: {
      const size_t element = dtype_size(mine.dtype);
      if (kind_ == CollectiveKind::kAllReduce && phase == 1) {
        for (int q = 0; q < p; ++q) {
          const auto [first, last] = all_reduce_part(mine.size, q, p);
          if (q == rank_ || first == last) continue;
          std::memcpy(byte_ptr(mine.recv, first * element),
                      byte_ptr(s.args[static_cast<size_t>(q)].recv, first * element),
                      (last - first) * element);
        }
        return Status::ok();
      }
      reduce_inputs_.resize(static_cast<size_t>(p));
      for (size_t q = 0; q < reduce_inputs_.size(); ++q) reduce_inputs_[q] = s.args[q].send;
      if (kind_ == CollectiveKind::kReduceScatter) {
        reduce_in_order(reduce_inputs_, static_cast<size_t>(rank_) * mine.size, mine.size,
                        mine.dtype, mine.op, mine.recv);
      } else {
        const auto [first, last] = all_reduce_part(mine.size, rank_, p);
        reduce_in_order(reduce_inputs_, first, last - first, mine.dtype, mine.op,
                        byte_ptr(mine.recv, first * element));
      }
      return Status::ok();
    }
    case CollectiveKind::kBarrier:
    case CollectiveKind::kSplit:
      break;
  }
  return Status::ok();
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
  const int p = group_->size();
  const int phases = phase_count();
  while (s.failure.is_ok() && s.posted == p && phase_ < phases &&
         (phase_ == 0 || s.phase_done[static_cast<size_t>(phase_ - 1)] == p)) {
    if (domain().aborted) return;
    s.active_copies += 1;
    lock.unlock();
    Status status = run_phase(s, phase_);
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
