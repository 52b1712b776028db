// MpiCommunicator: Communicator ops as non-blocking MPI calls, completed by a bounded poll.
#include "comm/mpi_communicator.hpp"

#include <algorithm>
#include <climits>
#include <string>
#include <thread>
#include <vector>

#include "comm/op_pool.hpp"
#include "core/log.hpp"

namespace seqpar {
namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

#define SEQPAR_MPI_CHECK(call)                                                \
  do {                                                                        \
    const int seqpar_mpi_err_ = (call);                                       \
    if (seqpar_mpi_err_ != MPI_SUCCESS)                                       \
      return ::seqpar::make_status(                                           \
          ::seqpar::StatusCode::kCommError, __FILE__, __LINE__,               \
          ::seqpar::str_cat(#call, ": ", mpi_error_string(seqpar_mpi_err_))); \
  } while (0)

constexpr size_t kMaxMessage = static_cast<size_t>(INT_MAX);

bool converts_through_float(DType dtype) { return dtype == DType::kBF16 || dtype == DType::kF16; }

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return MPI_DOUBLE;
    case DType::kI32:
      return MPI_INT32_T;
    case DType::kI64:
      return MPI_INT64_T;
    default:
      return MPI_FLOAT;  // fp32, and bf16/fp16 through fp32 scratch
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::kMax ? MPI_MAX : MPI_SUM; }

Status require_int_count(size_t count, const char* op_name) {
  SEQPAR_REQUIRE(count <= kMaxMessage, StatusCode::kUnsupported, "mpi ", op_name, ": ", count,
                 " elements exceed the MPI int count limit");
  return Status::ok();
}

// The MPI requests of one posted op, plus what must live until they complete. Pooled: its
// vectors keep their capacity from one post to the next.
class MpiPendingOp final : public PooledOp {
 public:
  // Starts a post. Point-to-point requests can be withdrawn if the op is abandoned; those of
  // collectives cannot (MPI forbids cancelling or freeing them).
  void begin(const char* op_name, bool point_to_point, int rank,
             std::chrono::milliseconds timeout) {
    op_name_ = op_name;
    point_to_point_ = point_to_point;
    rank_ = rank;
    timeout_ = timeout;
  }

  Status wait(std::chrono::steady_clock::time_point deadline) override {
    statuses_.resize(requests_.size());
    for (int polls = 0;; ++polls) {
      int done = 0;
      SEQPAR_MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done,
                                   statuses_.data()));
      if (done != 0) return finish();
      if (std::chrono::steady_clock::now() >= deadline) {
        return SEQPAR_FAIL(StatusCode::kTimeout, "mpi ", op_name_, " timed out after ",
                           timeout_.count(), " ms on rank ", rank_, peer_list());
      }
      if (polls < 64) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  // A receive whose arrival size is checked against `bytes` at completion.
  void add_recv(MPI_Request request, int peer, size_t bytes) {
    requests_.push_back(request);
    expected_.push_back(Expected{peer, static_cast<int>(bytes)});
  }
  void add(MPI_Request request) {
    requests_.push_back(request);
    expected_.push_back(Expected{-1, 0});
  }
  // A peer named in the timeout message, as "<role> rank <peer>".
  void add_peer(const char* role, int peer) { peers_.push_back(Peer{role, peer}); }

  // bf16/fp16 reductions: fp32 copies of the input and the result, converted back at the end.
  std::vector<float> float_send, float_recv;
  void* converted_out = nullptr;
  DType converted_dtype = DType::kF32;
  // all_to_all_v counts and displacements, as MPI ints.
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;

 protected:
  // Requests still active (the op timed out, failed or was never waited) are withdrawn: a
  // receive is cancelled (unless its message already matched), then every request is freed.
  // An unfinished collective keeps its op out of the pool for good, as MPI may still use the
  // op's staging buffers and count arrays.
  bool recycle() override {
    const bool unfinished = std::any_of(requests_.begin(), requests_.end(),
                                        [](MPI_Request r) { return r != MPI_REQUEST_NULL; });
    if (unfinished && !point_to_point_) return false;
    for (size_t i = 0; i < requests_.size(); ++i) {
      if (requests_[i] == MPI_REQUEST_NULL) continue;
      if (expected_[i].peer >= 0) MPI_Cancel(&requests_[i]);
      MPI_Request_free(&requests_[i]);
    }
    requests_.clear();
    expected_.clear();
    peers_.clear();
    converted_out = nullptr;
    return true;
  }

 private:
  struct Expected {
    int peer;  // -1: nothing to check
    int bytes;
  };
  struct Peer {
    const char* role;
    int peer;
  };

  Status finish() {
    for (size_t i = 0; i < requests_.size(); ++i) {
      if (expected_[i].peer < 0) continue;
      int received = 0;
      MPI_Get_count(&statuses_[i], MPI_BYTE, &received);
      SEQPAR_REQUIRE(received == expected_[i].bytes, StatusCode::kMismatch, "mpi ", op_name_,
                     ": recv from rank ", expected_[i].peer, " expected ", expected_[i].bytes,
                     " bytes but got ", received);
    }
    if (converted_out != nullptr)
      convert_from_float(float_recv.data(), converted_out, converted_dtype, float_recv.size());
    return Status::ok();
  }

  // " (send to rank 1, recv from rank 3)", or "" without peers.
  std::string peer_list() const {
    std::string text;
    for (const Peer& peer : peers_) {
      text += str_cat(text.empty() ? " (" : ", ", peer.role, " rank ", peer.peer);
    }
    return text.empty() ? text : text + ")";
  }

  const char* op_name_ = "";
  bool point_to_point_ = false;
  int rank_ = 0;
  std::chrono::milliseconds timeout_{0};
  std::vector<Peer> peers_;
  std::vector<MPI_Request> requests_;
  std::vector<MPI_Status> statuses_;
  std::vector<Expected> expected_;
};

// Owner of an op while it is being posted: an early error return releases (withdraws) it.
using MpiOpPtr = std::unique_ptr<MpiPendingOp, PendingOpRelease>;

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (a duplicate or a split result).
  MpiCommunicator(MPI_Comm comm, int rank, int size) : Communicator(rank, size), comm_(comm) {}
  ~MpiCommunicator() override { MPI_Comm_free(&comm_); }

  const char* backend_name() const override { return "mpi"; }

  void abort(const Status& reason) override {
    SEQPAR_LOG_ERROR("mpi communicator aborting the job: ", reason.to_string());
    MPI_Abort(comm_, 1);
  }

  static StatusOr<std::unique_ptr<Communicator>> adopt(MPI_Comm owned) {
    int rank = 0, size = 0;
    SEQPAR_MPI_CHECK(MPI_Comm_set_errhandler(owned, MPI_ERRORS_RETURN));
    SEQPAR_MPI_CHECK(MPI_Comm_rank(owned, &rank));
    SEQPAR_MPI_CHECK(MPI_Comm_size(owned, &size));
    return std::unique_ptr<Communicator>(std::make_unique<MpiCommunicator>(owned, rank, size));
  }

 protected:
  StatusOr<PendingOpPtr> post_exchange(std::span<const P2POp> ops) override {
    MpiOpPtr op = new_op("exchange", true);
    for (const P2POp& p2p : ops) {
      const bool is_send = p2p.kind == P2POp::Kind::kSend;
      op->add_peer(is_send ? "send to" : "recv from", p2p.peer);
      // Messages above INT_MAX bytes travel as in-order chunks; an empty one still matches.
      size_t offset = 0;
      do {
        const size_t chunk = std::min(p2p.bytes - offset, kMaxMessage);
        char* data = static_cast<char*>(p2p.buffer) + offset;
        MPI_Request request = MPI_REQUEST_NULL;
        if (is_send) {
          SEQPAR_MPI_CHECK(
              MPI_Isend(data, static_cast<int>(chunk), MPI_BYTE, p2p.peer, kTag, comm_, &request));
          op->add(request);
        } else {
          SEQPAR_MPI_CHECK(
              MPI_Irecv(data, static_cast<int>(chunk), MPI_BYTE, p2p.peer, kTag, comm_, &request));
          op->add_recv(request, p2p.peer, chunk);
        }
        offset += chunk;
      } while (offset < p2p.bytes);
    }
    return PendingOpPtr(std::move(op));
  }

  StatusOr<PendingOpPtr> post_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                           std::span<const size_t> send_offsets, void* recv,
                                           std::span<const size_t> recv_bytes,
                                           std::span<const size_t> recv_offsets) override {
    MpiOpPtr op = new_op("all_to_all", false);
    SEQPAR_RETURN_IF_ERROR(to_ints(send_bytes, op->send_counts));
    SEQPAR_RETURN_IF_ERROR(to_ints(send_offsets, op->send_displs));
    SEQPAR_RETURN_IF_ERROR(to_ints(recv_bytes, op->recv_counts));
    SEQPAR_RETURN_IF_ERROR(to_ints(recv_offsets, op->recv_displs));
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ialltoallv(send, op->send_counts.data(), op->send_displs.data(), MPI_BYTE,
                                    recv, op->recv_counts.data(), op->recv_displs.data(), MPI_BYTE,
                                    comm_, &request));
    op->add(request);
    return PendingOpPtr(std::move(op));
  }

  StatusOr<PendingOpPtr> post_all_gather(const void* send, void* recv,
                                         size_t bytes_per_rank) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(bytes_per_rank, "all_gather"));
    MpiOpPtr op = new_op("all_gather", false);
    const bool in_place = send == static_cast<const char*>(recv) + rank() * bytes_per_rank;
    const int count = static_cast<int>(bytes_per_rank);
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, count, MPI_BYTE, recv, count,
                                    MPI_BYTE, comm_, &request));
    op->add(request);
    return PendingOpPtr(std::move(op));
  }

  StatusOr<PendingOpPtr> post_reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                             DType dtype, ReduceOp reduce) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(count_per_rank, "reduce_scatter"));
    MpiOpPtr op = new_op("reduce_scatter", false);
    const size_t total = count_per_rank * static_cast<size_t>(size());
    if (converts_through_float(dtype)) {
      stage_through_float(*op, send, total, recv, count_per_rank, dtype);
      send = op->float_send.data();
      recv = op->float_recv.data();
    }
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ireduce_scatter_block(send, recv, static_cast<int>(count_per_rank),
                                               mpi_type(dtype), mpi_op(reduce), comm_, &request));
    op->add(request);
    return PendingOpPtr(std::move(op));
  }

  StatusOr<PendingOpPtr> post_all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                         ReduceOp reduce) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(count, "all_reduce"));
    MpiOpPtr op = new_op("all_reduce", false);
    if (converts_through_float(dtype)) {
      stage_through_float(*op, send, count, recv, count, dtype);
      send = op->float_send.data();
      recv = op->float_recv.data();
    }
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv,
                                    static_cast<int>(count), mpi_type(dtype), mpi_op(reduce), comm_,
                                    &request));
    op->add(request);
    return PendingOpPtr(std::move(op));
  }

  StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(bytes, "broadcast"));
    MpiOpPtr op = new_op("broadcast", false);
    op->add_peer("root", root);
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ibcast(buffer, static_cast<int>(bytes), MPI_BYTE, root, comm_, &request));
    op->add(request);
    return PendingOpPtr(std::move(op));
  }

  Status do_barrier(std::chrono::steady_clock::time_point deadline) override {
    MpiOpPtr op = new_op("barrier", false);
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ibarrier(comm_, &request));
    op->add(request);
    return op->wait(deadline);
  }

  void do_progress() override {
    // Probing matches nothing; it only runs the progress engine (rendezvous, copies) for every
    // request this process has posted. A failure here would also fail the wait, so it is ignored.
    int flag = 0;
    (void)MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, MPI_STATUS_IGNORE);
  }

  StatusOr<std::unique_ptr<Communicator>> do_split(int color, int key) override {
    MPI_Comm child = MPI_COMM_NULL;
    SEQPAR_MPI_CHECK(MPI_Comm_split(comm_, color, key, &child));
    return adopt(child);
  }

 private:
  static constexpr int kTag = 0;

  MpiOpPtr new_op(const char* op_name, bool point_to_point) {
    auto& op = ops_.acquire<MpiPendingOp>([] { return std::make_unique<MpiPendingOp>(); });
    op.begin(op_name, point_to_point, rank(), timeout());
    return MpiOpPtr(&op);
  }

  static Status to_ints(std::span<const size_t> values, std::vector<int>& out) {
    out.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      SEQPAR_REQUIRE(values[i] <= kMaxMessage, StatusCode::kUnsupported,
                     "mpi all_to_all: ", values[i],
                     " bytes or offset exceed the MPI int count limit");
      out[i] = static_cast<int>(values[i]);
    }
    return Status::ok();
  }

  // fp32 copies of `send_count` input elements and room for `recv_count` results, converted
  // back into `recv` when the op completes.
  static void stage_through_float(MpiPendingOp& op, const void* send, size_t send_count, void* recv,
                                  size_t recv_count, DType dtype) {
    op.float_send.resize(send_count);
    op.float_recv.resize(recv_count);
    convert_to_float(send, dtype, op.float_send.data(), send_count);
    op.converted_out = recv;
    op.converted_dtype = dtype;
  }

  MPI_Comm comm_;
  OpPool ops_;  // of MpiPendingOp
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> make_mpi_communicator(MPI_Comm comm) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  SEQPAR_REQUIRE(initialized != 0, StatusCode::kInvalidArgument,
                 "make_mpi_communicator: MPI is not initialised (call MPI_Init first)");
  MPI_Comm duplicate = MPI_COMM_NULL;
  SEQPAR_MPI_CHECK(MPI_Comm_dup(comm, &duplicate));
  return MpiCommunicator::adopt(duplicate);
}

}  // namespace seqpar
