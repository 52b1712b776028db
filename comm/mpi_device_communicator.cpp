// MpiDeviceCommunicator: each op's staging copies and MPI calls laid out (mpi_device_op.hpp runs
// them), in the CUDA-aware or the staged mode (mpi_device_communicator.hpp).
#include "comm/mpi_device_communicator.hpp"

#include <algorithm>
#include <numeric>

#include "comm/mpi_device_op.hpp"
#include "core/log.hpp"

namespace seqpar {
namespace {

using OpPtr = std::unique_ptr<MpiDeviceOp, PendingOpRelease>;

Status to_int(size_t value, int& out, const char* op_name) {
  SEQPAR_RETURN_IF_ERROR(require_int_count(value, op_name));
  out = static_cast<int>(value);
  return Status::ok();
}

class MpiDeviceCommunicator final : public Communicator {
 public:
  MpiDeviceCommunicator(MPI_Comm comm, int rank, int size, bool cuda_aware,
                        std::shared_ptr<MpiDeviceQueue> queue)
      : Communicator(rank, size), comm_(comm), cuda_aware_(cuda_aware), queue_(std::move(queue)) {}
  ~MpiDeviceCommunicator() override {
    // Sends still queued on this communicator must reach MPI before it is freed (a peer may be
    // waiting for them); bounded, and nothing more can be done about a failure here.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // nothing can be sent or freed after MPI_Finalize
    (void)queue_->launch_all(std::chrono::steady_clock::now() + timeout());
    MPI_Comm_free(&comm_);
  }

  const char* backend_name() const override { return "mpi"; }
  bool device_memory() const override { return true; }
  bool cuda_aware() const { return cuda_aware_; }

  void abort(const Status& reason) override {
    SEQPAR_LOG_ERROR("mpi communicator aborting the job: ", reason.to_string());
    MPI_Abort(comm_, 1);
  }

  static StatusOr<std::unique_ptr<Communicator>> adopt(MPI_Comm owned, bool cuda_aware,
                                                       std::shared_ptr<MpiDeviceQueue> queue) {
    int rank = 0, size = 0;
    SEQPAR_MPI_CHECK(MPI_Comm_set_errhandler(owned, MPI_ERRORS_RETURN));
    SEQPAR_MPI_CHECK(MPI_Comm_rank(owned, &rank));
    SEQPAR_MPI_CHECK(MPI_Comm_size(owned, &size));
    if (queue == nullptr) {
      SEQPAR_ASSIGN_OR_RETURN(queue, MpiDeviceQueue::create());
    }
    return std::unique_ptr<Communicator>(
        std::make_unique<MpiDeviceCommunicator>(owned, rank, size, cuda_aware, std::move(queue)));
  }

 protected:
  StatusOr<PendingOpPtr> post_exchange(std::span<const P2POp> ops) override {
    size_t send_total = 0, recv_total = 0;
    for (const P2POp& p2p : ops)
      (p2p.kind == P2POp::Kind::kSend ? send_total : recv_total) += p2p.bytes;
    SEQPAR_ASSIGN_OR_RETURN(
        OpPtr op, new_op(MpiDeviceOp::Kind::kExchange, "exchange", true, send_total, recv_total));
    char* out = op->send_stage();
    char* in = op->recv_stage();
    for (const P2POp& p2p : ops) {
      if (p2p.kind == P2POp::Kind::kSend) {
        op->requests.add_peer("send to", p2p.peer);
        op->sends.push_back(
            {p2p.peer, cuda_aware_ ? static_cast<const char*>(p2p.buffer) : out, p2p.bytes});
        if (!cuda_aware_) op->copy_out(p2p.buffer, out, p2p.bytes);
        out += cuda_aware_ ? 0 : p2p.bytes;
        continue;
      }
      op->requests.add_peer("recv from", p2p.peer);
      char* landing = cuda_aware_ ? static_cast<char*>(p2p.buffer) : in;
      // Receives are posted now, in post order (so messages between two ranks match in order);
      // above INT_MAX bytes they are in-order chunks, and an empty one still matches.
      size_t offset = 0;
      do {
        const size_t chunk = std::min(p2p.bytes - offset, kMaxMpiCount);
        MPI_Request request = MPI_REQUEST_NULL;
        SEQPAR_MPI_CHECK(MPI_Irecv(landing + offset, static_cast<int>(chunk), MPI_BYTE, p2p.peer,
                                   kTag, comm_, &request));
        op->requests.add_recv(request, p2p.peer, chunk);
        offset += chunk;
      } while (offset < p2p.bytes);
      if (!cuda_aware_) op->copy_in(in, p2p.buffer, p2p.bytes);
      in += cuda_aware_ ? 0 : p2p.bytes;
    }
    return queue(std::move(op));
  }

  StatusOr<PendingOpPtr> post_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                           std::span<const size_t> send_offsets, void* recv,
                                           std::span<const size_t> recv_bytes,
                                           std::span<const size_t> recv_offsets) override {
    const size_t send_total = std::accumulate(send_bytes.begin(), send_bytes.end(), size_t{0});
    const size_t recv_total = std::accumulate(recv_bytes.begin(), recv_bytes.end(), size_t{0});
    SEQPAR_ASSIGN_OR_RETURN(OpPtr op, new_op(MpiDeviceOp::Kind::kAllToAllV, "all_to_all", false,
                                             send_total, recv_total));
    const size_t ranks = send_bytes.size();
    for (auto* v : {&op->send_counts, &op->send_displs, &op->recv_counts, &op->recv_displs}) {
      v->resize(ranks);
    }
    // Staged, the pieces are packed in the staging buffers in rank order.
    size_t packed_send = 0, packed_recv = 0;
    for (size_t q = 0; q < ranks; ++q) {
      SEQPAR_RETURN_IF_ERROR(to_int(send_bytes[q], op->send_counts[q], "all_to_all"));
      SEQPAR_RETURN_IF_ERROR(to_int(recv_bytes[q], op->recv_counts[q], "all_to_all"));
      SEQPAR_RETURN_IF_ERROR(
          to_int(cuda_aware_ ? send_offsets[q] : packed_send, op->send_displs[q], "all_to_all"));
      SEQPAR_RETURN_IF_ERROR(
          to_int(cuda_aware_ ? recv_offsets[q] : packed_recv, op->recv_displs[q], "all_to_all"));
      if (!cuda_aware_) {
        op->copy_out(static_cast<const char*>(send) + send_offsets[q],
                     op->send_stage() + packed_send, send_bytes[q]);
        op->copy_in(op->recv_stage() + packed_recv, static_cast<char*>(recv) + recv_offsets[q],
                    recv_bytes[q]);
      }
      packed_send += send_bytes[q];
      packed_recv += recv_bytes[q];
    }
    op->mpi_send = cuda_aware_ ? send : op->send_stage();
    op->mpi_recv = cuda_aware_ ? recv : op->recv_stage();
    return queue(std::move(op));
  }

  StatusOr<PendingOpPtr> post_all_gather(const void* send, void* recv,
                                         size_t bytes_per_rank) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(bytes_per_rank, "all_gather"));
    const size_t total = bytes_per_rank * static_cast<size_t>(size());
    SEQPAR_ASSIGN_OR_RETURN(OpPtr op, new_op(MpiDeviceOp::Kind::kAllGather, "all_gather", false,
                                             bytes_per_rank, total));
    op->piece = bytes_per_rank;
    if (cuda_aware_) {
      op->in_place = send == static_cast<const char*>(recv) + rank() * bytes_per_rank;
      op->mpi_send = send;
      op->mpi_recv = recv;
    } else {
      op->copy_out(send, op->send_stage(), bytes_per_rank);
      op->copy_in(op->recv_stage(), recv, total);
      op->mpi_send = op->send_stage();
      op->mpi_recv = op->recv_stage();
    }
    return queue(std::move(op));
  }

  StatusOr<PendingOpPtr> post_reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                             DType dtype, ReduceOp reduce) override {
    const size_t piece = count_per_rank * dtype_size(dtype);
    SEQPAR_RETURN_IF_ERROR(require_int_count(piece, "reduce_scatter"));
    const size_t total = piece * static_cast<size_t>(size());
    // Rank r receives slice r of every rank's input, then reduces them.
    SEQPAR_ASSIGN_OR_RETURN(OpPtr op, new_op(MpiDeviceOp::Kind::kScatterReduce, "reduce_scatter",
                                             false, total, total, true));
    op->copy_out(send, op->send_stage(), total);
    set_reduction(*op, piece, count_per_rank, dtype, reduce, recv);
    return queue(std::move(op));
  }

  StatusOr<PendingOpPtr> post_all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                         ReduceOp reduce) override {
    const size_t piece = count * dtype_size(dtype);
    SEQPAR_RETURN_IF_ERROR(require_int_count(piece, "all_reduce"));
    // Every rank receives every rank's input, then reduces them.
    SEQPAR_ASSIGN_OR_RETURN(OpPtr op, new_op(MpiDeviceOp::Kind::kGatherReduce, "all_reduce", false,
                                             piece, piece * static_cast<size_t>(size()), true));
    op->copy_out(send, op->send_stage(), piece);
    set_reduction(*op, piece, count, dtype, reduce, recv);
    return queue(std::move(op));
  }

  StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(bytes, "broadcast"));
    const bool is_root = rank() == root;
    SEQPAR_ASSIGN_OR_RETURN(OpPtr op, new_op(MpiDeviceOp::Kind::kBroadcast, "broadcast", false,
                                             is_root ? bytes : 0, is_root ? 0 : bytes));
    op->requests.add_peer("root", root);
    op->piece = bytes;
    op->root = root;
    if (cuda_aware_) {
      op->mpi_recv = buffer;
    } else if (is_root) {
      op->copy_out(buffer, op->send_stage(), bytes);
      op->mpi_recv = op->send_stage();
    } else {
      op->copy_in(op->recv_stage(), buffer, bytes);
      op->mpi_recv = op->recv_stage();
    }
    return queue(std::move(op));
  }

  Status do_barrier(std::chrono::steady_clock::time_point deadline) override {
    // Behind the collectives still queued, as on every other rank.
    SEQPAR_RETURN_IF_ERROR(queue_->launch_all(deadline));
    barrier_.begin("barrier", false, rank(), timeout());
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ibarrier(comm_, &request));
    barrier_.add(request);
    const Status status = barrier_.wait(deadline);
    barrier_.withdraw();
    return status;
  }

  void do_progress() override {
    // A failed launch is reported by its op's wait; probing only drives MPI's progress engine.
    (void)queue_->launch_ready();
    int flag = 0;
    (void)MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, MPI_STATUS_IGNORE);
  }

  StatusOr<std::unique_ptr<Communicator>> do_split(int color, int key) override {
    // MPI_Comm_split is a collective on comm_: every queued send and collective must be issued
    // first, in post order on every rank, and a peer waiting for one of them must not be left
    // behind this rank's blocking split.
    SEQPAR_RETURN_IF_ERROR(queue_->launch_all(std::chrono::steady_clock::now() + timeout()));
    MPI_Comm child = MPI_COMM_NULL;
    SEQPAR_MPI_CHECK(MPI_Comm_split(comm_, color, key, &child));
    return adopt(child, cuda_aware_, queue_);
  }

 private:
  static constexpr int kTag = 0;

  // A pooled op begun for this post (reductions are always staged; other ops only in the staged
  // mode); in the CUDA-aware mode, once the stream's work before the post is done.
  StatusOr<OpPtr> new_op(MpiDeviceOp::Kind kind, const char* op_name, bool point_to_point,
                         size_t send_bytes, size_t recv_bytes, bool staged_anyway = false) {
    SEQPAR_RETURN_IF_ERROR(queue_->launch_ready());
    auto& made = ops_.acquire<MpiDeviceOp>([&] { return std::make_unique<MpiDeviceOp>(queue_); });
    OpPtr op(&made);
    const bool staged = staged_anyway || !cuda_aware_;
    SEQPAR_RETURN_IF_ERROR(op->begin(kind, op_name, point_to_point, comm_, rank(), timeout(),
                                     static_cast<cudaStream_t>(stream()), staged ? send_bytes : 0,
                                     staged ? recv_bytes : 0));
    // Staged ops' copies already wait for the post's event on the device.
    if (!staged) SEQPAR_RETURN_IF_ERROR(op->wait_ready());
    return op;
  }

  void set_reduction(MpiDeviceOp& op, size_t piece, size_t count, DType dtype, ReduceOp reduce,
                     void* recv) const {
    op.mpi_send = op.send_stage();
    op.mpi_recv = op.recv_stage();
    op.piece = piece;
    op.count = count;
    op.ranks = size();
    op.dtype = dtype;
    op.reduce = reduce;
    op.reduced = recv;
  }

  // Starts the op's copies to the host and queues its MPI calls behind them.
  StatusOr<PendingOpPtr> queue(OpPtr op) {
    SEQPAR_RETURN_IF_ERROR(op->start_copies_out());
    SEQPAR_RETURN_IF_ERROR(queue_->push(*op));
    return PendingOpPtr(op.release());
  }

  MPI_Comm comm_;
  bool cuda_aware_;
  std::shared_ptr<MpiDeviceQueue> queue_;
  OpPool ops_;  // of MpiDeviceOp
  MpiRequests barrier_;
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> adopt_mpi_device_communicator(MPI_Comm owned,
                                                                      bool cuda_aware) {
  return MpiDeviceCommunicator::adopt(owned, cuda_aware, nullptr);
}

bool is_cuda_aware_mpi_communicator(const Communicator& comm) {
  const auto* device = dynamic_cast<const MpiDeviceCommunicator*>(&comm);
  return device != nullptr && device->cuda_aware();
}

}  // namespace seqpar
