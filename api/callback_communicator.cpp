// CallbackCommunicator: Communicator operations forwarded to the caller's seqpar_comm_callbacks.
#include "api/callback_communicator.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace seqpar::c_api {
namespace {

// The first published table ends after its last function: a smaller struct_size is a table from
// before the ABI's first release (or garbage), and is refused.
constexpr size_t kCallbacksMinSize =
    offsetof(seqpar_comm_callbacks, destroy) + sizeof(seqpar_comm_callbacks::destroy);

StatusCode code_of(seqpar_status status) {
  const int code = static_cast<int>(status);
  return code > SEQPAR_OK && code <= SEQPAR_INTERNAL ? static_cast<StatusCode>(code)
                                                     : StatusCode::kInternal;
}

// A callback's failure as a Status: its code, and the message it left with
// seqpar_set_last_error (cleared before the call), prefixed with the callback's name.
Status from_callback(seqpar_status status, const char* callback) {
  if (status == SEQPAR_OK) return Status::ok();
  const char* message = seqpar_last_error();
  if (message == nullptr || *message == '\0') {
    return Status(code_of(status),
                  str_cat("the ", callback, " callback returned ", seqpar_status_name(status)));
  }
  return Status(code_of(status), str_cat("the ", callback, " callback failed: ", message));
}

int32_t dtype_to_c(DType dtype) { return static_cast<int32_t>(dtype); }  // the same values
int32_t reduce_to_c(ReduceOp op) {
  return op == ReduceOp::kMax ? SEQPAR_REDUCE_MAX : SEQPAR_REDUCE_SUM;
}

// One posted operation: the caller's work handle, handed back to wait or discard exactly once.
class CallbackPendingOp final : public PendingOp {
 public:
  CallbackPendingOp(const seqpar_comm_callbacks* table, void* user, void* work, const char* op,
                    int rank)
      : table_(table), user_(user), work_(work), op_(op), rank_(rank) {}

  Status wait(std::chrono::steady_clock::time_point deadline) override {
    if (work_ == nullptr) return Status::ok();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    // At least 1 ms: many transports read a zero timeout as "wait forever" (c10d's Work::wait).
    const int64_t timeout_ms = std::max<int64_t>(1, left.count());
    void* work = std::exchange(work_, nullptr);  // wait is done with it, whatever it returns
    seqpar_set_last_error("");
    const seqpar_status status = table_->wait(user_, work, timeout_ms);
    if (status == SEQPAR_OK) return Status::ok();
    const Status failed = from_callback(status, "wait");
    if (status == SEQPAR_TIMEOUT) {
      return Status(StatusCode::kTimeout, str_cat(op_, " on rank ", rank_, " timed out after ",
                                                  timeout_ms, " ms: ", failed.message()));
    }
    return Status(failed.code(), str_cat(op_, " on rank ", rank_, ": ", failed.message()));
  }

  void release() override {
    if (work_ != nullptr && table_->discard != nullptr) table_->discard(user_, work_);
    delete this;
  }

 private:
  const seqpar_comm_callbacks* table_;
  void* user_;
  void* work_;
  const char* op_;
  int rank_;
};

class CallbackCommunicator final : public Communicator {
 public:
  CallbackCommunicator(const seqpar_comm_callbacks& table, void* user, int rank, int size,
                       Device device)
      : Communicator(rank, size), table_(table), user_(user), device_(device) {}
  ~CallbackCommunicator() override {
    if (table_.destroy != nullptr) table_.destroy(user_);
  }

  const char* backend_name() const override { return "callbacks"; }
  bool device_memory() const override { return device_ == Device::kCuda; }

  void abort(const Status& reason) override {
    if (table_.abort != nullptr) table_.abort(user_, reason.to_string().c_str());
  }

 protected:
  StatusOr<PendingOpPtr> post_exchange(std::span<const P2POp> ops) override {
    p2p_.resize(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      p2p_[i].kind = ops[i].kind == P2POp::Kind::kSend ? SEQPAR_P2P_SEND : SEQPAR_P2P_RECV;
      p2p_[i].peer = ops[i].peer;
      p2p_[i].buffer = ops[i].buffer;
      p2p_[i].bytes = ops[i].bytes;
    }
    return post("exchange", [&](void** work) {
      return table_.exchange(user_, p2p_.data(), p2p_.size(), work);
    });
  }

  StatusOr<PendingOpPtr> post_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                           std::span<const size_t> send_offsets, void* recv,
                                           std::span<const size_t> recv_bytes,
                                           std::span<const size_t> recv_offsets) override {
    // The spans are the caller's (live until wait, as the buffers).
    return post("all_to_all_v", [&](void** work) {
      return table_.all_to_all_v(user_, send, send_bytes.data(), send_offsets.data(), recv,
                                 recv_bytes.data(), recv_offsets.data(), work);
    });
  }

  StatusOr<PendingOpPtr> post_all_gather(const void* send, void* recv,
                                         size_t bytes_per_rank) override {
    return post("all_gather", [&](void** work) {
      return table_.all_gather(user_, send, recv, bytes_per_rank, work);
    });
  }

  StatusOr<PendingOpPtr> post_reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                             DType dtype, ReduceOp op) override {
    return post("reduce_scatter", [&](void** work) {
      return table_.reduce_scatter(user_, send, recv, count_per_rank, dtype_to_c(dtype),
                                   reduce_to_c(op), work);
    });
  }

  StatusOr<PendingOpPtr> post_all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                         ReduceOp op) override {
    return post("all_reduce", [&](void** work) {
      return table_.all_reduce(user_, send, recv, count, dtype_to_c(dtype), reduce_to_c(op), work);
    });
  }

  StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) override {
    return post("broadcast",
                [&](void** work) { return table_.broadcast(user_, buffer, bytes, root, work); });
  }

  Status do_barrier(std::chrono::steady_clock::time_point deadline) override {
    SEQPAR_ASSIGN_OR_RETURN(
        PendingOpPtr op, post("barrier", [&](void** work) { return table_.barrier(user_, work); }));
    return op ? op->wait(deadline) : Status::ok();
  }

  StatusOr<std::unique_ptr<Communicator>> do_split(int color, int key) override {
    if (table_.split == nullptr) {
      return Status(StatusCode::kUnsupported,
                    "split: this callback communicator has no split function "
                    "(seqpar_comm_callbacks.split is NULL), so schemes that need subgroups "
                    "(hybrid; tree with 1 < ranks_per_node < ranks) cannot run on it");
    }
    seqpar_comm_callbacks child{};
    child.struct_size = sizeof(seqpar_comm_callbacks);
    void* child_user = nullptr;
    int child_rank = -1;
    int child_size = 0;
    seqpar_set_last_error("");
    SEQPAR_RETURN_IF_ERROR(from_callback(
        table_.split(user_, color, key, &child, &child_user, &child_rank, &child_size), "split"));
    StatusOr<seqpar_comm_callbacks> checked = read_callbacks(&child, "split", "the child's table");
    Status status = checked.status();
    if (status.is_ok() &&
        !(child_size >= 1 && child_size <= size() && child_rank >= 0 && child_rank < child_size)) {
      status = Status(StatusCode::kInvalidArgument,
                      str_cat("split: the callback placed rank ", rank(), " at rank ", child_rank,
                              " of ", child_size, " (want 0 <= rank < size <= ", size(), ")"));
    }
    if (!status.is_ok()) {
      if (child.destroy != nullptr) child.destroy(child_user);  // it was made: let it go
      return status;
    }
    return make_callback_communicator(checked.value(), child_user, child_rank, child_size, device_,
                                      "split");
  }

  void do_progress() override {
    if (table_.progress != nullptr) table_.progress(user_);
  }

  Status do_set_stream(void* stream) override {
    if (table_.set_stream == nullptr) {
      SEQPAR_REQUIRE(stream == nullptr, StatusCode::kUnsupported,
                     "set_stream: this callback communicator has no set_stream function "
                     "(seqpar_comm_callbacks.set_stream is NULL), so it follows the legacy "
                     "default stream only");
      return Status::ok();
    }
    seqpar_set_last_error("");
    return from_callback(table_.set_stream(user_, stream), "set_stream");
  }

 private:
  // Calls `callback(&work)` and wraps the handle it returns (none: completed in the call).
  template <class Callback>
  StatusOr<PendingOpPtr> post(const char* op, Callback&& callback) {
    void* work = nullptr;
    seqpar_set_last_error("");
    const seqpar_status status = callback(&work);
    if (status != SEQPAR_OK) {
      // A failed post owns no handle; if it left one anyway, it is let go.
      if (work != nullptr && table_.discard != nullptr) table_.discard(user_, work);
      const Status failed = from_callback(status, op);
      return Status(failed.code(), str_cat(op, " on rank ", rank(), ": ", failed.message()));
    }
    if (work == nullptr) return PendingOpPtr();
    return PendingOpPtr(new CallbackPendingOp(&table_, user_, work, op, rank()));
  }

  seqpar_comm_callbacks table_;
  void* user_;
  Device device_;
  std::vector<seqpar_p2p_op> p2p_;  // post_exchange's ops in C form, reused
};

}  // namespace

StatusOr<seqpar_comm_callbacks> read_callbacks(const seqpar_comm_callbacks* given,
                                               const char* function, const char* what) {
  if (given == nullptr) {
    return Status(StatusCode::kInvalidArgument, str_cat(function, ": ", what, " is null"));
  }
  const size_t size = given->struct_size;
  if (size < kCallbacksMinSize) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": ", what, ": seqpar_comm_callbacks.struct_size = ", size,
                          " is older than this library accepts (at least ", kCallbacksMinSize,
                          "; set it to sizeof(seqpar_comm_callbacks))"));
  }
  // Bytes past the functions this library knows (a newer header's table) must be zero.
  const auto* bytes = reinterpret_cast<const unsigned char*>(given);
  for (size_t at = sizeof(seqpar_comm_callbacks); at < size; ++at) {
    if (bytes[at] != 0) {
      return Status(
          StatusCode::kUnsupported,
          str_cat(function, ": ", what, " sets functions past byte ", sizeof(seqpar_comm_callbacks),
                  " that this library does not know (it is older than the caller's "
                  "header)"));
    }
  }
  seqpar_comm_callbacks table{};
  std::memcpy(&table, given, std::min(size, sizeof(seqpar_comm_callbacks)));
  table.struct_size = sizeof(seqpar_comm_callbacks);
  const std::pair<const void*, const char*> required[] = {
      {reinterpret_cast<const void*>(table.exchange), "exchange"},
      {reinterpret_cast<const void*>(table.all_to_all_v), "all_to_all_v"},
      {reinterpret_cast<const void*>(table.all_gather), "all_gather"},
      {reinterpret_cast<const void*>(table.reduce_scatter), "reduce_scatter"},
      {reinterpret_cast<const void*>(table.all_reduce), "all_reduce"},
      {reinterpret_cast<const void*>(table.broadcast), "broadcast"},
      {reinterpret_cast<const void*>(table.barrier), "barrier"},
      {reinterpret_cast<const void*>(table.wait), "wait"},
  };
  for (const auto& [pointer, name] : required) {
    if (pointer == nullptr) {
      return Status(StatusCode::kInvalidArgument,
                    str_cat(function, ": ", what, ": the required function ", name,
                            " is NULL (seqpar_comm_callbacks.", name, ")"));
    }
  }
  return table;
}

StatusOr<std::unique_ptr<Communicator>> make_callback_communicator(
    const seqpar_comm_callbacks& callbacks, void* user, int rank, int size, Device device,
    const char* function) {
  if (size < 1 || rank < 0 || rank >= size) {
    return Status(StatusCode::kInvalidArgument, str_cat(function, ": rank ", rank, " of size ",
                                                        size, " (want 0 <= rank < size)"));
  }
  return std::unique_ptr<Communicator>(
      std::make_unique<CallbackCommunicator>(callbacks, user, rank, size, device));
}

}  // namespace seqpar::c_api
