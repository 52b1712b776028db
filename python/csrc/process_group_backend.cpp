#include "process_group_backend.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <utility>

namespace seqpar_torch {

using seqpar::Status;
using seqpar::StatusCode;

namespace {

// A tag is 2^30 | (communicator id << 18) | (message counter mod 2^18): a positive int.
constexpr int kTagCounterBits = 18;
constexpr uint32_t kTagCounterMask = (1u << kTagCounterBits) - 1;
constexpr uint32_t kTagBase = 1u << 30;
constexpr uint32_t kMaxCommId = (1u << (30 - kTagCounterBits)) - 1;

// A byte view of caller memory (host: this backend serves CPU plans), valid while the op is.
at::Tensor bytes_at(const void* data, size_t bytes) {
  return at::from_blob(const_cast<void*>(data), {static_cast<int64_t>(bytes)},
                       at::TensorOptions().dtype(at::kByte));
}

seqpar::StatusOr<at::ScalarType> scalar_type_of(int32_t dtype) {
  switch (dtype) {
    case SEQPAR_DTYPE_F32:
      return at::kFloat;
    case SEQPAR_DTYPE_BF16:
      return at::kBFloat16;
    case SEQPAR_DTYPE_F16:
      return at::kHalf;
    case SEQPAR_COMM_DTYPE_F64:
      return at::kDouble;
    case SEQPAR_COMM_DTYPE_I32:
      return at::kInt;
    case SEQPAR_COMM_DTYPE_I64:
      return at::kLong;
    default:
      return Status(StatusCode::kUnsupported,
                    "reduction of an unknown element type " + std::to_string(dtype));
  }
}

at::Tensor elements_at(const void* data, size_t count, at::ScalarType type) {
  return at::from_blob(const_cast<void*>(data), {static_cast<int64_t>(count)},
                       at::TensorOptions().dtype(type));
}

c10d::ReduceOp c10d_op(seqpar::CommBackend::ReduceOp op) {
  return op == seqpar::CommBackend::ReduceOp::kMax ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
}

// dst = reduction of parts[0], parts[1], ... in that order (deterministic: every rank reduces
// the same contributions in the same order).
void reduce_in_rank_order(at::Tensor dst, const std::vector<at::Tensor>& parts,
                          seqpar::CommBackend::ReduceOp op) {
  at::Tensor acc = parts.front().clone();
  for (size_t r = 1; r < parts.size(); ++r) {
    if (op == seqpar::CommBackend::ReduceOp::kMax)
      acc = at::maximum(acc, parts[r]);
    else
      acc.add_(parts[r]);
  }
  dst.copy_(acc);
}

// The blocking exchange inside split() waits as long as seqpar's own operations:
// SEQPAR_TIMEOUT_S seconds (default 300).
int64_t split_timeout_ms() {
  const char* text = std::getenv("SEQPAR_TIMEOUT_S");
  const double seconds = text != nullptr ? std::atof(text) : 0.0;
  return static_cast<int64_t>(1000.0 * (seconds > 0 ? seconds : 300.0));
}

bool is_timeout(const std::string& what) {
  return what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos;
}

}  // namespace

struct ProcessGroupBackend::Pending {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::vector<at::Tensor> keep;       // staging and views the works use, alive until they end
  std::function<void()> on_complete;  // unpacking / reducing once every work has completed
};

ProcessGroupBackend::ProcessGroupBackend(c10::intrusive_ptr<c10d::ProcessGroup> group)
    : group_(std::move(group)), shared_(std::make_shared<Shared>()) {
  members_.resize(static_cast<size_t>(group_->getSize()));
  std::iota(members_.begin(), members_.end(), 0);
  rank_ = group_->getRank();
  sent_.assign(members_.size(), 0);
  received_.assign(members_.size(), 0);
}

ProcessGroupBackend::ProcessGroupBackend(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                         std::vector<int> members, int rank, uint32_t id,
                                         std::shared_ptr<Shared> shared)
    : group_(std::move(group)),
      members_(std::move(members)),
      rank_(rank),
      id_(id),
      shared_(std::move(shared)) {
  sent_.assign(members_.size(), 0);
  received_.assign(members_.size(), 0);
}

template <class Body>
Status ProcessGroupBackend::run_op(const char* op, Body&& body) {
  if (!shared_->failure.empty()) {
    return Status(StatusCode::kAborted, std::string("torch.distributed ") + op +
                                            ": refused, an earlier operation " +
                                            "of this process group failed (" + shared_->failure +
                                            "); make a new process group");
  }
  try {
    Status status = body();
    return status.is_ok() ? status : failed(std::move(status));
  } catch (const std::exception& e) {
    return failed(Status(StatusCode::kCommError,
                         std::string("torch.distributed ") + op + " failed: " + e.what()));
  }
}

Status ProcessGroupBackend::failed(Status status) {
  if (shared_->failure.empty()) shared_->failure = status.message();
  return status;
}

void ProcessGroupBackend::abort(const char* message) {
  if (shared_->failure.empty()) shared_->failure = message != nullptr ? message : "aborted";
}

int ProcessGroupBackend::tag(uint32_t counter) const {
  return static_cast<int>(kTagBase | (id_ << kTagCounterBits) | (counter & kTagCounterMask));
}

void ProcessGroupBackend::post_send(Pending& pending, const void* buffer, size_t bytes, int peer) {
  if (bytes == 0) return;  // both sides skip a 0-byte message (their sizes agree)
  std::vector<at::Tensor> tensors{bytes_at(buffer, bytes)};
  pending.works.push_back(group_->send(tensors, members_[peer], tag(sent_[peer]++)));
  pending.keep.push_back(tensors[0]);
}

void ProcessGroupBackend::post_recv(Pending& pending, void* buffer, size_t bytes, int peer) {
  if (bytes == 0) return;
  std::vector<at::Tensor> tensors{bytes_at(buffer, bytes)};
  pending.works.push_back(group_->recv(tensors, members_[peer], tag(received_[peer]++)));
  pending.keep.push_back(tensors[0]);
}

Status ProcessGroupBackend::finish(std::unique_ptr<Pending> pending, void** work) {
  *work = nullptr;
  if (pending->works.empty()) {  // nothing posted: complete now
    if (pending->on_complete) pending->on_complete();
    return Status::ok();
  }
  *work = pending.release();
  return Status::ok();
}

Status ProcessGroupBackend::run_blocking(std::unique_ptr<Pending> pending) {
  void* work = nullptr;
  Status status = finish(std::move(pending), &work);
  if (!status.is_ok() || work == nullptr) return status;
  return wait(work, split_timeout_ms());
}

Status ProcessGroupBackend::exchange(seqpar::Span<P2POp> ops, void** work) {
  return run_op("send/recv", [&] {
    // Checked whole before anything is posted. A rank's messages to itself are copies: the k-th
    // send to self fills the k-th receive.
    std::vector<const P2POp*> self_sends, self_recvs;
    for (const P2POp& op : ops) {
      if (op.peer < 0 || op.peer >= size())
        return Status(StatusCode::kInvalidArgument,
                      "exchange: peer " + std::to_string(op.peer) + " outside the group");
      if (op.peer == rank_) (op.kind == SEQPAR_P2P_SEND ? self_sends : self_recvs).push_back(&op);
    }
    if (self_sends.size() != self_recvs.size())
      return Status(StatusCode::kInvalidArgument,
                    "exchange: sends to this rank itself and receives from it do not pair up");
    for (size_t i = 0; i < self_sends.size(); ++i) {
      if (self_sends[i]->bytes != self_recvs[i]->bytes)
        return Status(StatusCode::kInvalidArgument, "exchange: a self message's sizes differ");
    }
    auto pending = std::make_unique<Pending>();
    for (const P2POp& op : ops) {
      if (op.peer == rank_) continue;
      if (op.kind == SEQPAR_P2P_SEND)
        post_send(*pending, op.buffer, op.bytes, op.peer);
      else
        post_recv(*pending, op.buffer, op.bytes, op.peer);
    }
    for (size_t i = 0; i < self_sends.size(); ++i) {
      if (self_sends[i]->bytes > 0)
        std::memmove(self_recvs[i]->buffer, self_sends[i]->buffer, self_sends[i]->bytes);
    }
    return finish(std::move(pending), work);
  });
}

Status ProcessGroupBackend::all_to_all_v(const void* send, seqpar::Span<size_t> send_bytes,
                                         seqpar::Span<size_t> send_offsets, void* recv,
                                         seqpar::Span<size_t> recv_bytes,
                                         seqpar::Span<size_t> recv_offsets, void** work) {
  return run_op("all_to_all", [&] {
    auto pending = std::make_unique<Pending>();
    const auto* in = static_cast<const char*>(send);
    auto* out = static_cast<char*>(recv);
    const size_t n = members_.size();
    if (!whole()) {
      for (size_t r = 0; r < n; ++r) {
        if (static_cast<int>(r) == rank_) {
          if (send_bytes[r] > 0)
            std::memmove(out + recv_offsets[r], in + send_offsets[r], send_bytes[r]);
          continue;
        }
        post_recv(*pending, out + recv_offsets[r], recv_bytes[r], static_cast<int>(r));
        post_send(*pending, in + send_offsets[r], send_bytes[r], static_cast<int>(r));
      }
      return finish(std::move(pending), work);
    }
    // c10d's all_to_all_single takes packed slices: pack (and unpack) where seqpar's are not.
    auto packed = [n](seqpar::Span<size_t> bytes, seqpar::Span<size_t> offsets) {
      size_t at = 0;
      for (size_t r = 0; r < n; ++r) {
        if (offsets[r] != at) return false;
        at += bytes[r];
      }
      return true;
    };
    std::vector<int64_t> in_splits(n), out_splits(n);
    for (size_t r = 0; r < n; ++r) {
      in_splits[r] = static_cast<int64_t>(send_bytes[r]);
      out_splits[r] = static_cast<int64_t>(recv_bytes[r]);
    }
    const size_t in_total = std::accumulate(send_bytes.begin(), send_bytes.end(), size_t{0});
    const size_t out_total = std::accumulate(recv_bytes.begin(), recv_bytes.end(), size_t{0});
    at::Tensor in_t, out_t;
    if (packed(send_bytes, send_offsets)) {
      in_t = bytes_at(in, in_total);
    } else {
      in_t = at::empty({static_cast<int64_t>(in_total)}, at::kByte);
      size_t at = 0;
      for (size_t r = 0; r < n; ++r) {
        std::memcpy(in_t.data_ptr<uint8_t>() + at, in + send_offsets[r], send_bytes[r]);
        at += send_bytes[r];
      }
    }
    const bool unpack = !packed(recv_bytes, recv_offsets);
    out_t =
        unpack ? at::empty({static_cast<int64_t>(out_total)}, at::kByte) : bytes_at(out, out_total);
    if (unpack) {
      std::vector<size_t> bytes(recv_bytes.begin(), recv_bytes.end());
      std::vector<size_t> offsets(recv_offsets.begin(), recv_offsets.end());
      pending->on_complete = [out_t, out, bytes, offsets] {
        size_t at = 0;
        for (size_t r = 0; r < bytes.size(); ++r) {
          std::memcpy(out + offsets[r], out_t.data_ptr<uint8_t>() + at, bytes[r]);
          at += bytes[r];
        }
      };
    }
    pending->works.push_back(group_->all_to_all_single(out_t, in_t, out_splits, in_splits));
    pending->keep = {in_t, out_t};
    return finish(std::move(pending), work);
  });
}

void ProcessGroupBackend::p2p_all_gather(Pending& pending, const void* send, void* recv,
                                         size_t bytes_per_rank) {
  auto* out = static_cast<char*>(recv);
  for (int r = 0; r < size(); ++r) {
    if (r == rank_) continue;
    post_recv(pending, out + static_cast<size_t>(r) * bytes_per_rank, bytes_per_rank, r);
    post_send(pending, send, bytes_per_rank, r);
  }
  char* own = out + static_cast<size_t>(rank_) * bytes_per_rank;
  if (own != send && bytes_per_rank > 0) std::memmove(own, send, bytes_per_rank);
}

Status ProcessGroupBackend::all_gather(const void* send, void* recv, size_t bytes_per_rank,
                                       void** work) {
  return run_op("all_gather", [&] {
    auto pending = std::make_unique<Pending>();
    if (!whole()) {
      p2p_all_gather(*pending, send, recv, bytes_per_rank);
      return finish(std::move(pending), work);
    }
    // The input may be this rank's own slice of the output: hand c10d a copy then.
    at::Tensor in_t = bytes_at(send, bytes_per_rank);
    const auto* out_begin = static_cast<const char*>(recv);
    const auto* in_begin = static_cast<const char*>(send);
    if (in_begin >= out_begin && in_begin < out_begin + bytes_per_rank * members_.size())
      in_t = in_t.clone();
    at::Tensor out_t = bytes_at(recv, bytes_per_rank * members_.size());
    pending->works.push_back(group_->all_gather_single(out_t, in_t));
    pending->keep = {in_t, out_t};
    return finish(std::move(pending), work);
  });
}

Status ProcessGroupBackend::reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                           int32_t dtype, ReduceOp op, void** work) {
  auto type = scalar_type_of(dtype);
  if (!type.is_ok()) return type.status();
  return run_op("reduce_scatter", [&] {
    auto pending = std::make_unique<Pending>();
    const size_t n = members_.size();
    const size_t slice_bytes = count_per_rank * at::elementSize(*type);
    at::Tensor out = elements_at(recv, count_per_rank, *type);
    if (whole()) {
      // gloo has no reduce_scatter of one tensor: all-reduce a copy, keep this rank's slice.
      at::Tensor all = elements_at(send, count_per_rank * n, *type).clone();
      c10d::AllreduceOptions options;
      options.reduceOp = c10d_op(op);
      std::vector<at::Tensor> tensors{all};
      pending->works.push_back(group_->allreduce(tensors, options));
      const int64_t begin = static_cast<int64_t>(count_per_rank) * rank_;
      pending->on_complete = [all, out, begin, count_per_rank] {
        out.copy_(all.narrow(0, begin, static_cast<int64_t>(count_per_rank)));
      };
      pending->keep = {all, out};
      return finish(std::move(pending), work);
    }
    // Every rank sends slice r to rank r and reduces what it receives in rank order.
    at::Tensor parts = at::empty({static_cast<int64_t>(count_per_rank * n)}, *type);
    const auto* in = static_cast<const char*>(send);
    auto* gathered = static_cast<char*>(parts.data_ptr());
    for (int r = 0; r < size(); ++r) {
      if (r == rank_) {
        std::memcpy(gathered + r * slice_bytes, in + r * slice_bytes, slice_bytes);
        continue;
      }
      post_recv(*pending, gathered + r * slice_bytes, slice_bytes, r);
      post_send(*pending, in + r * slice_bytes, slice_bytes, r);
    }
    pending->on_complete = [parts, out, n, op] {
      reduce_in_rank_order(out, parts.chunk(static_cast<int64_t>(n)), op);
    };
    pending->keep = {parts, out};
    return finish(std::move(pending), work);
  });
}

Status ProcessGroupBackend::all_reduce(const void* send, void* recv, size_t count, int32_t dtype,
                                       ReduceOp op, void** work) {
  auto type = scalar_type_of(dtype);
  if (!type.is_ok()) return type.status();
  return run_op("all_reduce", [&] {
    auto pending = std::make_unique<Pending>();
    at::Tensor out = elements_at(recv, count, *type);
    if (whole()) {
      if (send != recv) out.copy_(elements_at(send, count, *type));
      c10d::AllreduceOptions options;
      options.reduceOp = c10d_op(op);
      std::vector<at::Tensor> tensors{out};
      pending->works.push_back(group_->allreduce(tensors, options));
      pending->keep = {out};
      return finish(std::move(pending), work);
    }
    // Everyone's contribution, reduced in rank order on every rank: the same result everywhere.
    const size_t bytes = count * at::elementSize(*type);
    at::Tensor parts = at::empty({static_cast<int64_t>(count * members_.size())}, *type);
    at::Tensor mine = elements_at(send, count, *type).clone();  // send may be recv
    p2p_all_gather(*pending, mine.data_ptr(), parts.data_ptr(), bytes);
    const auto n = static_cast<int64_t>(members_.size());
    pending->on_complete = [parts, out, n, op] { reduce_in_rank_order(out, parts.chunk(n), op); };
    pending->keep = {parts, mine, out};
    return finish(std::move(pending), work);
  });
}

Status ProcessGroupBackend::broadcast(void* buffer, size_t bytes, int root, void** work) {
  if (root < 0 || root >= size())
    return Status(StatusCode::kInvalidArgument, "broadcast: root outside the group");
  return run_op("broadcast", [&] {
    auto pending = std::make_unique<Pending>();
    if (whole()) {
      c10d::BroadcastOptions options;
      options.rootRank = root;
      std::vector<at::Tensor> tensors{bytes_at(buffer, bytes)};
      if (bytes > 0) pending->works.push_back(group_->broadcast(tensors, options));
      pending->keep = tensors;
    } else if (rank_ == root) {
      for (int r = 0; r < size(); ++r)
        if (r != root) post_send(*pending, buffer, bytes, r);
    } else {
      post_recv(*pending, buffer, bytes, root);
    }
    return finish(std::move(pending), work);
  });
}

Status ProcessGroupBackend::barrier(void** work) {
  return run_op("barrier", [&] {
    auto pending = std::make_unique<Pending>();
    if (whole()) {
      pending->works.push_back(group_->barrier());
      return finish(std::move(pending), work);
    }
    // One byte to and from every other rank: no rank leaves before all have arrived.
    at::Tensor flags = at::zeros({2 * static_cast<int64_t>(members_.size())}, at::kByte);
    for (int r = 0; r < size(); ++r) {
      if (r == rank_) continue;
      post_recv(*pending, flags.data_ptr<uint8_t>() + 2 * r, 1, r);
      post_send(*pending, flags.data_ptr<uint8_t>() + 2 * r + 1, 1, r);
    }
    pending->keep = {flags};
    return finish(std::move(pending), work);
  });
}

Status ProcessGroupBackend::wait(void* work, int64_t timeout_ms) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(work));
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 1));
  for (auto& w : pending->works) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    try {
      if (!w->wait(std::max(left, std::chrono::milliseconds(1))))
        return failed(
            Status(StatusCode::kCommError, "torch.distributed: an operation was aborted"));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      return failed(Status(is_timeout(what) ? StatusCode::kTimeout : StatusCode::kCommError,
                           "torch.distributed: " + what));
    }
  }
  return run_op("completion", [&] {
    if (pending->on_complete) pending->on_complete();
    return Status::ok();
  });
}

void ProcessGroupBackend::discard(void* work) {
  // seqpar lets go of an operation only on an error path: the group is marked failed (its
  // messages may be left unmatched). The works own gloo's transfer state over the caller's
  // buffers, so give them a short common deadline to end before they are dropped.
  std::unique_ptr<Pending> pending(static_cast<Pending*>(work));
  (void)failed(Status(StatusCode::kAborted, "an operation was abandoned after an error"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  for (auto& w : pending->works) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    try {
      (void)w->wait(std::max(left, std::chrono::milliseconds(1)));
    } catch (const std::exception&) {
    }
  }
}

seqpar::StatusOr<seqpar::CommBackend::Split> ProcessGroupBackend::split(int color, int key) {
  // Everyone's (color, key, next free communicator id), then the members of this rank's color
  // ordered by (key, rank); the child's id is the largest its members propose, so it is new to
  // each of them.
  const int n = size();
  std::vector<int32_t> mine{color, key, static_cast<int32_t>(shared_->next_comm_id)};
  std::vector<int32_t> all(3 * static_cast<size_t>(n));
  auto pending = std::make_unique<Pending>();
  Status status = run_op("split", [&] {
    if (whole()) {
      at::Tensor in_t = bytes_at(mine.data(), sizeof(int32_t) * 3);
      at::Tensor out_t = bytes_at(all.data(), sizeof(int32_t) * 3 * n);
      pending->works.push_back(group_->all_gather_single(out_t, in_t));
      pending->keep = {in_t, out_t};
    } else {
      p2p_all_gather(*pending, mine.data(), all.data(), sizeof(int32_t) * 3);
    }
    return Status::ok();
  });
  if (status.is_ok()) status = run_blocking(std::move(pending));
  if (!status.is_ok()) return status;
  std::vector<int> ranks;
  for (int r = 0; r < n; ++r)
    if (all[3 * r] == color) ranks.push_back(r);
  std::stable_sort(ranks.begin(), ranks.end(),
                   [&](int a, int b) { return all[3 * a + 1] < all[3 * b + 1]; });
  std::vector<int> members;
  int child_rank = -1;
  uint32_t id = 0;
  for (int r : ranks) {
    if (r == rank_) child_rank = static_cast<int>(members.size());
    members.push_back(members_[r]);
    id = std::max(id, static_cast<uint32_t>(all[3 * r + 2]));
  }
  if (id > kMaxCommId) {
    return failed(
        Status(StatusCode::kUnsupported, "split: more than " + std::to_string(kMaxCommId) +
                                             " communicators split from one process group"));
  }
  shared_->next_comm_id = id + 1;
  Split split;
  split.rank = child_rank;
  split.size = static_cast<int>(members.size());
  split.backend = std::unique_ptr<ProcessGroupBackend>(
      new ProcessGroupBackend(group_, std::move(members), child_rank, id, shared_));
  return split;
}

}  // namespace seqpar_torch
