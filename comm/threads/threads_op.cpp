// ThreadsOp: the bounded wait loop shared by every threads-backend operation, and the ordering
// of the compute stream after a device-memory op, once it is finished.
#include <algorithm>

#include "comm/threads/threads_ops.hpp"
#include "core/log.hpp"

namespace seqpar {

ThreadsOp::ThreadsOp(std::shared_ptr<ThreadsGroup> group, int rank)
    : group_(std::move(group)), rank_(rank) {}

void ThreadsOp::begin(std::chrono::milliseconds timeout, const OpStreams& streams) {
  timeout_ = timeout;
  streams_ = streams;
  finished_ = false;
  ordered_ = false;
  status_ = Status::ok();
}

void ThreadsOp::register_pending() {
  domain().pending[static_cast<size_t>(group_->domain_rank(rank_))].push_back(this);
}

void ThreadsOp::retire() {
  std::unique_lock<std::mutex> lock(domain().mutex);
  if (!finished_) {
    fail(lock, Status(StatusCode::kAborted,
                      str_cat("threads ", name(), ": request destroyed before it was waited")));
  }
  const Status ordered = order_once();
  if (!ordered.is_ok()) {
    SEQPAR_LOG_ERROR("threads ", name(), " released unwaited: ", ordered.to_string());
  }
  auto& pending = domain().pending[static_cast<size_t>(group_->domain_rank(rank_))];
  pending.erase(std::remove(pending.begin(), pending.end(), this), pending.end());
  domain().changed.notify_all();
}

void ThreadsOp::finish(Status status) {
  finished_ = true;
  status_ = std::move(status);
  domain().changed.notify_all();
}

void ThreadsOp::fail(std::unique_lock<std::mutex>& lock, Status status) {
  abandon(lock, status);
  finish(std::move(status));
}

void ThreadsOp::progress_thread(std::unique_lock<std::mutex>& lock) {
  // Only this thread adds to or removes from its list, so indices stay valid while an op
  // releases the lock around a copy.
  auto& pending = domain().pending[static_cast<size_t>(group_->domain_rank(rank_))];
  for (size_t i = 0; i < pending.size(); ++i) {
    if (!pending[i]->finished()) pending[i]->progress(lock);
  }
}

Status ThreadsOp::wait(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(domain().mutex);
  while (!finished_) {
    progress_thread(lock);
    if (finished_) break;
    if (domain().aborted) {
      fail(lock, domain().abort_status(name()));
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      fail(lock, SEQPAR_FAIL(StatusCode::kTimeout, "threads ", name(), " timed out after ",
                             timeout_.count(), " ms on rank ", rank_, ": ", waiting_for()));
      break;
    }
    domain().changed.wait_until(lock, deadline);
  }
  const Status ordered = order_once();
  if (status_.is_ok()) status_ = ordered;
  return status_;
}

Status ThreadsOp::order_once() {
  if (ordered_) return Status::ok();
  ordered_ = true;
  return order_compute_stream();
}

}  // namespace seqpar
