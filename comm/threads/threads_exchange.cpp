// ThreadsExchangeOp: grouped sends and receives between threads. A send is queued on its
// (src, dst) channel; the copy into the receive buffer is made by the domain's copy engine as
// soon as both are posted, or by the receiver in its own wait if the engine has not started it.
// Either marks the send done, which is what the sender's wait waits for. Posted sends live in
// the channels, never in the op, so an op given back to its pool leaves nothing a peer could
// still reach. On device memory "the copy" is enqueued on the receiver's communication stream,
// ordered by the two sides' post events (threads_ops.hpp).
#include <algorithm>
#include <cstring>

#include "comm/threads/threads_ops.hpp"

namespace seqpar {

ThreadsExchangeOp::ThreadsExchangeOp(std::shared_ptr<ThreadsGroup> group, int rank)
    : ThreadsOp(std::move(group), rank) {}

void ThreadsExchangeOp::post(std::span<const P2POp> ops, std::chrono::milliseconds timeout,
                             const OpStreams& streams) {
  begin(timeout, streams);
  withdrawing_ = false;
  device_error_ = Status::ok();
  if (on_device()) {
    const size_t sends = static_cast<size_t>(std::count_if(
        ops.begin(), ops.end(), [](const P2POp& op) { return op.kind == P2POp::Kind::kSend; }));
    if (Status prepared = prepare_device(sends); !prepared.is_ok()) {
      finish(std::move(prepared));
      return;
    }
  }
  for (const P2POp& op : ops) {
    if (op.kind == P2POp::Kind::kSend) {
      threads_device::Event ready = nullptr, read = nullptr;
      if (on_device()) {
        ready = events_[kPostedEvent];
        read = events_[kFirstSendEvent + sends_.size()];
      }
      const uint64_t seq = group_->channel(rank_, op.peer).post(op.buffer, op.bytes, ready, read);
      sends_.push_back(Send{op.peer, seq, false, false});
    } else {
      const uint64_t seq = group_->channel(op.peer, rank_).take_recv_seq();
      recvs_.push_back(Recv{op.peer, seq, op.buffer, op.bytes, false, false, false});
    }
  }
  register_pending();
  domain().changed.notify_all();
}

Status ThreadsExchangeOp::prepare_device(size_t sends) {
  SEQPAR_RETURN_IF_ERROR(events_.reserve(kFirstSendEvent + sends));
  return threads_device::record(events_[kPostedEvent], streams_.compute);
}

Status ThreadsExchangeOp::move_bytes(const Recv& recv, const void* data,
                                     threads_device::Event ready, threads_device::Event read) {
  if (!on_device()) {
    if (recv.bytes > 0) std::memcpy(recv.buffer, data, recv.bytes);
    return Status::ok();
  }
  // After the sender's data is written and our buffer is free, on our communication stream.
  const threads_device::Stream stream = streams_.comm;
  SEQPAR_RETURN_IF_ERROR(threads_device::stream_wait(stream, ready));
  SEQPAR_RETURN_IF_ERROR(threads_device::stream_wait(stream, events_[kPostedEvent]));
  SEQPAR_RETURN_IF_ERROR(threads_device::copy(recv.buffer, data, recv.bytes, stream));
  SEQPAR_RETURN_IF_ERROR(threads_device::record(read, stream));
  return threads_device::record(events_[kReceivedEvent], stream);
}

bool ThreadsExchangeOp::pull(std::unique_lock<std::mutex>& lock, Recv& recv) {
  Channel& channel = group_->channel(recv.src, rank_);
  PostedSend* send = channel.find(recv.seq);
  if (send == nullptr || domain().aborted) return true;  // not posted yet
  if (recv.engine_copying) return true;                  // the engine finishes it
  if (send->state == PostedSend::State::kCancelled) {
    send->receiver_finished = true;
    recv.done = true;
    channel.pop_finished();
    fail(lock, SEQPAR_FAIL(StatusCode::kAborted, "threads exchange: recv from rank ", recv.src,
                           " failed: the sender gave up its send (it timed out or aborted)"));
    return false;
  }
  if (send->bytes != recv.bytes) {
    send->state = PostedSend::State::kMismatch;
    send->receiver_bytes = recv.bytes;
    send->receiver_finished = true;
    recv.done = true;
    channel.pop_finished();
    domain().changed.notify_all();
    fail(lock,
         SEQPAR_FAIL(StatusCode::kMismatch, "threads exchange: recv from rank ", recv.src,
                     " expects ", recv.bytes, " bytes but the matching send has ", send->bytes));
    return false;
  }
  copy_in(lock, channel, recv);
  return true;
}

void ThreadsExchangeOp::copy_in(std::unique_lock<std::mutex>& lock, Channel& channel, Recv& recv) {
  PostedSend* send = channel.find(recv.seq);
  send->state = PostedSend::State::kCopying;
  const void* data = send->data;
  const threads_device::Event ready = send->ready, read = send->read;
  lock.unlock();
  Status moved = move_bytes(recv, data, ready, read);
  lock.lock();
  if (!moved.is_ok() && device_error_.is_ok()) device_error_ = std::move(moved);
  send = channel.find(recv.seq);  // the sender may have grown the ring meanwhile
  send->state = PostedSend::State::kDone;
  send->receiver_finished = true;
  recv.done = true;
  recv.copied = true;
  recv.engine_copying = false;
  channel.pop_finished();
  domain().changed.notify_all();
}

bool ThreadsExchangeOp::engine_copy(std::unique_lock<std::mutex>& lock) {
  if (withdrawing_) return false;
  for (Recv& recv : recvs_) {
    if (recv.done || recv.engine_copying) continue;
    Channel& channel = group_->channel(recv.src, rank_);
    const PostedSend* send = channel.find(recv.seq);
    // Anything but a plain match (not posted, being copied, cancelled, wrong size) is left to
    // the receiver's own progress, which reports failures.
    if (send == nullptr || send->state != PostedSend::State::kPosted || send->bytes != recv.bytes) {
      continue;
    }
    recv.engine_copying = true;
    copy_in(lock, channel, recv);
    return true;
  }
  return false;
}

bool ThreadsExchangeOp::check_send(std::unique_lock<std::mutex>& lock, Send& send) {
  Channel& channel = group_->channel(rank_, send.dst);
  PostedSend* posted = channel.find(send.seq);
  if (posted->state == PostedSend::State::kDone) {
    posted->sender_finished = true;
    send.done = true;
    send.copied = true;
    channel.pop_finished();
  } else if (posted->state == PostedSend::State::kMismatch) {
    const size_t expected = posted->receiver_bytes;
    const size_t sent = posted->bytes;
    posted->sender_finished = true;
    send.done = true;
    channel.pop_finished();
    fail(lock, SEQPAR_FAIL(StatusCode::kMismatch, "threads exchange: send to rank ", send.dst,
                           " has ", sent, " bytes but the matching recv expects ", expected));
    return false;
  }
  return true;
}

void ThreadsExchangeOp::progress(std::unique_lock<std::mutex>& lock) {
  for (Recv& recv : recvs_) {
    if (!recv.done && !pull(lock, recv)) return;
  }
  bool all_done = true;
  for (Send& send : sends_) {
    if (!send.done && !check_send(lock, send)) return;
    all_done = all_done && send.done;
  }
  for (const Recv& recv : recvs_) all_done = all_done && recv.done;
  if (!all_done) return;
  if (device_error_.is_ok()) {
    finish(Status::ok());
  } else {
    fail(lock, device_error_);
  }
}

void ThreadsExchangeOp::abandon(std::unique_lock<std::mutex>& lock, const Status&) {
  // No new engine copy into our buffers from now on (the waits below release the lock), and one
  // in flight finishes before we let the caller reuse them.
  withdrawing_ = true;
  domain().changed.wait(lock, [&] {
    return std::none_of(recvs_.begin(), recvs_.end(),
                        [](const Recv& recv) { return recv.engine_copying; });
  });
  for (Send& send : sends_) {
    if (send.done) continue;
    Channel& channel = group_->channel(rank_, send.dst);
    PostedSend* posted = channel.find(send.seq);
    if (posted->state == PostedSend::State::kPosted) posted->state = PostedSend::State::kCancelled;
    // A receiver copying out of our buffer finishes before we let the caller reuse it.
    domain().changed.wait(
        lock, [&] { return channel.find(send.seq)->state != PostedSend::State::kCopying; });
    posted = channel.find(send.seq);
    posted->sender_finished = true;
    send.done = true;
    send.copied = posted->state == PostedSend::State::kDone;
    channel.pop_finished();
  }
  domain().changed.notify_all();
}

Status ThreadsExchangeOp::order_compute_stream() {
  if (!on_device()) return Status::ok();
  // Our later compute-stream work follows the reads of our sends and the writes of our receives
  // that were enqueued (all of them, unless the op failed).
  Status status;
  auto wait_for = [&](threads_device::Event event) {
    Status waited = threads_device::stream_wait(streams_.compute, event);
    if (status.is_ok()) status = std::move(waited);
  };
  for (size_t i = 0; i < sends_.size(); ++i) {
    if (sends_[i].copied) wait_for(events_[kFirstSendEvent + i]);
  }
  if (std::any_of(recvs_.begin(), recvs_.end(), [](const Recv& recv) { return recv.copied; })) {
    wait_for(events_[kReceivedEvent]);
  }
  return status;
}

bool ThreadsExchangeOp::recycle() {
  retire();
  recvs_.clear();
  sends_.clear();
  return true;
}

std::string ThreadsExchangeOp::waiting_for() {
  std::string text;
  for (const Recv& recv : recvs_) {
    if (recv.done) continue;
    const bool posted = group_->channel(recv.src, rank_).find(recv.seq) != nullptr;
    text += str_cat(text.empty() ? "" : "; ", "recv of ", recv.bytes, " bytes from rank ", recv.src,
                    posted ? "" : " (no matching send posted)");
  }
  for (const Send& send : sends_) {
    if (send.done) continue;
    text += str_cat(text.empty() ? "" : "; ", "send to rank ", send.dst,
                    " (not received: no matching recv waited)");
  }
  return text;
}

}  // namespace seqpar
