// Communicator's public wrappers: argument validation, per-op accounting (the rules in
// communicator.hpp), default timeout, and blocking forms as start_ + wait.
#include "comm/communicator.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/enum_names.hpp"

namespace seqpar {
namespace {

bool is_reduction_dtype(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF64:
    case DType::kI32:
    case DType::kI64:
    case DType::kBF16:
    case DType::kF16:
      return true;
  }
  return false;
}

// True when the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share a byte.
bool ranges_overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return false;
  const auto* pa = static_cast<const char*>(a);
  const auto* pb = static_cast<const char*>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

}  // namespace

const char* comm_op_name(CommOp op) {
  static constexpr auto kNames =
      enum_names<CommOp>("exchange", "all_to_all", "all_gather", "reduce_scatter", "all_reduce",
                         "broadcast", "barrier");
  static_assert(kNames.names.size() == static_cast<size_t>(CommOp::kCount));
  return kNames.name(op);
}

int64_t collective_bytes_sent(CommOp op, int ranks, int64_t bytes) {
  switch (op) {
    case CommOp::kAllGather:
    case CommOp::kReduceScatter:
      return (ranks - 1) * bytes;
    case CommOp::kAllReduce:
      return ranks > 1 ? bytes : 0;
    default:
      return -1;
  }
}

int64_t CommStats::total_bytes_sent() const {
  int64_t total = 0;
  for (const CommOpStats& op : ops) total += op.bytes_sent;
  return total;
}

CommStats& CommStats::operator+=(const CommStats& other) {
  for (size_t op = 0; op < ops.size(); ++op) {
    ops[op].calls += other.ops[op].calls;
    ops[op].bytes_sent += other.ops[op].bytes_sent;
  }
  return *this;
}

CommStats stats_with(const Communicator& comm, std::span<Communicator* const> subgroups) {
  CommStats total = comm.stats();
  for (const Communicator* sub : subgroups) total += sub->stats();
  return total;
}

void reset_stats_with(Communicator& comm, std::span<Communicator* const> subgroups) {
  comm.reset_stats();
  for (Communicator* sub : subgroups) sub->reset_stats();
}

int64_t CommStats::total_calls() const {
  int64_t total = 0;
  for (const CommOpStats& op : ops) total += op.calls;
  return total;
}

std::chrono::milliseconds Communicator::default_comm_timeout() {
  constexpr std::chrono::milliseconds kDefault{300'000};
  const char* text = std::getenv("SEQPAR_TIMEOUT_S");
  if (text == nullptr || *text == '\0') return kDefault;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(seconds > 0.0)) return kDefault;
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// ---- point to point ----

Status Communicator::exchange(std::span<const P2POp> ops) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(start_exchange(ops, request));
  return wait(request);
}

Status Communicator::start_exchange(std::span<const P2POp> ops, Request& request) {
  SEQPAR_REQUIRE(!request.pending(), StatusCode::kInvalidArgument,
                 "exchange: the Request still holds an operation that was not waited");
  int64_t bytes_sent = 0;
  for (const P2POp& op : ops) {
    const bool is_send = op.kind == P2POp::Kind::kSend;
    SEQPAR_REQUIRE(op.peer >= 0 && op.peer < size_, StatusCode::kInvalidArgument,
                   "exchange: ", is_send ? "send to" : "recv from", " peer ", op.peer,
                   " is outside the group of ", size_, " ranks");
    SEQPAR_REQUIRE(op.buffer != nullptr || op.bytes == 0, StatusCode::kInvalidArgument,
                   "exchange: ", is_send ? "send to" : "recv from", " peer ", op.peer,
                   " has a null buffer for ", op.bytes, " bytes");
    // Self messages never leave the rank, so they are not counted (P == 1 counts 0 bytes).
    if (is_send && op.peer != rank_) bytes_sent += static_cast<int64_t>(op.bytes);
  }
  stats_[CommOp::kExchange].calls += 1;
  stats_[CommOp::kExchange].bytes_sent += bytes_sent;
  SEQPAR_ASSIGN_OR_RETURN(request.op_, post_exchange(ops));
  return Status::ok();
}

// ---- all to all ----

Status Communicator::all_to_all(const void* send, void* recv, size_t bytes_per_rank) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(start_all_to_all(send, recv, bytes_per_rank, request));
  return wait(request);
}

Status Communicator::start_all_to_all(const void* send, void* recv, size_t bytes_per_rank,
                                      Request& request) {
  equal_split_bytes_.assign(static_cast<size_t>(size_), bytes_per_rank);
  equal_split_offsets_.resize(static_cast<size_t>(size_));
  for (size_t r = 0; r < equal_split_offsets_.size(); ++r) {
    equal_split_offsets_[r] = r * bytes_per_rank;
  }
  return start_all_to_all_v(send, equal_split_bytes_, equal_split_offsets_, recv,
                            equal_split_bytes_, equal_split_offsets_, request);
}

Status Communicator::all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                  std::span<const size_t> send_offsets, void* recv,
                                  std::span<const size_t> recv_bytes,
                                  std::span<const size_t> recv_offsets) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(
      start_all_to_all_v(send, send_bytes, send_offsets, recv, recv_bytes, recv_offsets, request));
  return wait(request);
}

Status Communicator::start_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                        std::span<const size_t> send_offsets, void* recv,
                                        std::span<const size_t> recv_bytes,
                                        std::span<const size_t> recv_offsets, Request& request) {
  SEQPAR_REQUIRE(!request.pending(), StatusCode::kInvalidArgument,
                 "all_to_all: the Request still holds an operation that was not waited");
  const size_t p = static_cast<size_t>(size_);
  SEQPAR_REQUIRE(send_bytes.size() == p && send_offsets.size() == p && recv_bytes.size() == p &&
                     recv_offsets.size() == p,
                 StatusCode::kInvalidArgument, "all_to_all: size and offset spans must have ", p,
                 " entries (got send ", send_bytes.size(), "/", send_offsets.size(), ", recv ",
                 recv_bytes.size(), "/", recv_offsets.size(), ")");
  size_t send_extent = 0;
  size_t recv_extent = 0;
  int64_t bytes_sent = 0;
  for (size_t r = 0; r < p; ++r) {
    send_extent = std::max(send_extent, send_bytes[r] > 0 ? send_offsets[r] + send_bytes[r] : 0);
    recv_extent = std::max(recv_extent, recv_bytes[r] > 0 ? recv_offsets[r] + recv_bytes[r] : 0);
    if (static_cast<int>(r) != rank_) bytes_sent += static_cast<int64_t>(send_bytes[r]);
  }
  SEQPAR_REQUIRE(send != nullptr || send_extent == 0, StatusCode::kInvalidArgument,
                 "all_to_all: null send buffer for ", send_extent, " bytes");
  SEQPAR_REQUIRE(recv != nullptr || recv_extent == 0, StatusCode::kInvalidArgument,
                 "all_to_all: null recv buffer for ", recv_extent, " bytes");
  SEQPAR_REQUIRE(!ranges_overlap(send, send_extent, recv, recv_extent),
                 StatusCode::kInvalidArgument, "all_to_all: send and recv buffers overlap");
  stats_[CommOp::kAllToAll].calls += 1;
  stats_[CommOp::kAllToAll].bytes_sent += bytes_sent;
  SEQPAR_ASSIGN_OR_RETURN(request.op_, post_all_to_all_v(send, send_bytes, send_offsets, recv,
                                                         recv_bytes, recv_offsets));
  return Status::ok();
}

// ---- all gather ----

Status Communicator::all_gather(const void* send, void* recv, size_t bytes_per_rank) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(start_all_gather(send, recv, bytes_per_rank, request));
  return wait(request);
}

Status Communicator::start_all_gather(const void* send, void* recv, size_t bytes_per_rank,
                                      Request& request) {
  SEQPAR_REQUIRE(!request.pending(), StatusCode::kInvalidArgument,
                 "all_gather: the Request still holds an operation that was not waited");
  const size_t recv_bytes = bytes_per_rank * static_cast<size_t>(size_);
  SEQPAR_REQUIRE((send != nullptr && recv != nullptr) || bytes_per_rank == 0,
                 StatusCode::kInvalidArgument, "all_gather: null buffer for ", bytes_per_rank,
                 " bytes per rank");
  // In place is the own slice of recv; any other overlap is an error.
  const bool in_place = send == static_cast<const char*>(recv) + rank_ * bytes_per_rank;
  SEQPAR_REQUIRE(in_place || !ranges_overlap(send, bytes_per_rank, recv, recv_bytes),
                 StatusCode::kInvalidArgument,
                 "all_gather: send overlaps recv (in place means send == recv + rank * bytes)");
  stats_[CommOp::kAllGather].calls += 1;
  stats_[CommOp::kAllGather].bytes_sent +=
      collective_bytes_sent(CommOp::kAllGather, size_, static_cast<int64_t>(bytes_per_rank));
  SEQPAR_ASSIGN_OR_RETURN(request.op_, post_all_gather(send, recv, bytes_per_rank));
  return Status::ok();
}

// ---- reductions ----

Status Communicator::reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                    DType dtype, ReduceOp op) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(start_reduce_scatter(send, recv, count_per_rank, dtype, op, request));
  return wait(request);
}

Status Communicator::start_reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                          DType dtype, ReduceOp op, Request& request) {
  SEQPAR_REQUIRE(!request.pending(), StatusCode::kInvalidArgument,
                 "reduce_scatter: the Request still holds an operation that was not waited");
  SEQPAR_REQUIRE(is_reduction_dtype(dtype), StatusCode::kInvalidArgument, "reduce_scatter: dtype ",
                 static_cast<int>(dtype), " cannot be reduced");
  SEQPAR_REQUIRE(op == ReduceOp::kSum || op == ReduceOp::kMax, StatusCode::kInvalidArgument,
                 "reduce_scatter: unknown reduce op ", static_cast<int>(op));
  const size_t slice_bytes = count_per_rank * dtype_size(dtype);
  SEQPAR_REQUIRE((send != nullptr && recv != nullptr) || slice_bytes == 0,
                 StatusCode::kInvalidArgument, "reduce_scatter: null buffer for ", count_per_rank,
                 " elements per rank");
  SEQPAR_REQUIRE(!ranges_overlap(send, slice_bytes * size_, recv, slice_bytes),
                 StatusCode::kInvalidArgument,
                 "reduce_scatter: send and recv overlap (not supported in place)");
  stats_[CommOp::kReduceScatter].calls += 1;
  stats_[CommOp::kReduceScatter].bytes_sent +=
      collective_bytes_sent(CommOp::kReduceScatter, size_, static_cast<int64_t>(slice_bytes));
  SEQPAR_ASSIGN_OR_RETURN(request.op_, post_reduce_scatter(send, recv, count_per_rank, dtype, op));
  return Status::ok();
}

Status Communicator::all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                ReduceOp op) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(start_all_reduce(send, recv, count, dtype, op, request));
  return wait(request);
}

Status Communicator::start_all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                      ReduceOp op, Request& request) {
  SEQPAR_REQUIRE(!request.pending(), StatusCode::kInvalidArgument,
                 "all_reduce: the Request still holds an operation that was not waited");
  SEQPAR_REQUIRE(is_reduction_dtype(dtype), StatusCode::kInvalidArgument, "all_reduce: dtype ",
                 static_cast<int>(dtype), " cannot be reduced");
  SEQPAR_REQUIRE(op == ReduceOp::kSum || op == ReduceOp::kMax, StatusCode::kInvalidArgument,
                 "all_reduce: unknown reduce op ", static_cast<int>(op));
  const size_t bytes = count * dtype_size(dtype);
  SEQPAR_REQUIRE((send != nullptr && recv != nullptr) || bytes == 0, StatusCode::kInvalidArgument,
                 "all_reduce: null buffer for ", count, " elements");
  SEQPAR_REQUIRE(send == recv || !ranges_overlap(send, bytes, recv, bytes),
                 StatusCode::kInvalidArgument,
                 "all_reduce: send and recv overlap (in place means send == recv)");
  stats_[CommOp::kAllReduce].calls += 1;
  stats_[CommOp::kAllReduce].bytes_sent +=
      collective_bytes_sent(CommOp::kAllReduce, size_, static_cast<int64_t>(bytes));
  SEQPAR_ASSIGN_OR_RETURN(request.op_, post_all_reduce(send, recv, count, dtype, op));
  return Status::ok();
}

// ---- broadcast, barrier ----

Status Communicator::broadcast(void* buffer, size_t bytes, int root) {
  Request request;
  SEQPAR_RETURN_IF_ERROR(start_broadcast(buffer, bytes, root, request));
  return wait(request);
}

Status Communicator::start_broadcast(void* buffer, size_t bytes, int root, Request& request) {
  SEQPAR_REQUIRE(!request.pending(), StatusCode::kInvalidArgument,
                 "broadcast: the Request still holds an operation that was not waited");
  SEQPAR_REQUIRE(root >= 0 && root < size_, StatusCode::kInvalidArgument, "broadcast: root ", root,
                 " is outside the group of ", size_, " ranks");
  SEQPAR_REQUIRE(buffer != nullptr || bytes == 0, StatusCode::kInvalidArgument,
                 "broadcast: null buffer for ", bytes, " bytes");
  stats_[CommOp::kBroadcast].calls += 1;
  if (rank_ == root)
    stats_[CommOp::kBroadcast].bytes_sent += static_cast<int64_t>((size_ - 1) * bytes);
  SEQPAR_ASSIGN_OR_RETURN(request.op_, post_broadcast(buffer, bytes, root));
  return Status::ok();
}

Status Communicator::barrier() {
  stats_[CommOp::kBarrier].calls += 1;
  return do_barrier(deadline());
}

Status Communicator::wait(Request& request) {
  if (!request.pending()) return Status::ok();
  Status status = request.op_->wait(deadline());
  request.op_.reset();
  return status;
}

StatusOr<std::unique_ptr<Communicator>> Communicator::split(int color, int key) {
  // Negative colors mean "no group" in MPI and NCCL; every rank here joins some group.
  SEQPAR_REQUIRE(color >= 0, StatusCode::kInvalidArgument, "split: color ", color, " must be >= 0");
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> child, do_split(color, key));
  child->set_timeout(timeout_);
  if (device_memory()) SEQPAR_RETURN_IF_ERROR(child->set_stream(stream_));
  return child;
}

Status Communicator::set_stream(void* stream) {
  SEQPAR_REQUIRE(device_memory(), StatusCode::kInvalidArgument, "the ", backend_name(),
                 " communicator moves host memory: it has no CUDA stream to follow");
  stream_ = stream;
  return do_set_stream(stream);
}

}  // namespace seqpar
