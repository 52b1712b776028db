// MpiCommunicator: Communicator ops as non-blocking MPI calls, completed by a bounded poll.
#include "comm/mpi_communicator.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "comm/mpi_requests.hpp"
#include "comm/op_pool.hpp"
#include "core/log.hpp"

#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>  // MPIX_Query_cuda_support
#endif
#ifdef SEQPAR_HAVE_CUDA
#include "comm/mpi_device_communicator.hpp"
#include "core/device_buffer.hpp"
#endif

namespace seqpar {
namespace {

constexpr size_t kMaxMessage = kMaxMpiCount;

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

// The MPI requests of one posted op, plus what must live until they complete. Pooled: its
// vectors keep their capacity from one post to the next.
class MpiPendingOp final : public PooledOp {
 public:
  void begin(const char* op_name, bool point_to_point, int rank,
             std::chrono::milliseconds timeout) {
    requests.begin(op_name, point_to_point, rank, timeout);
  }

  Status wait(std::chrono::steady_clock::time_point deadline) override {
    SEQPAR_RETURN_IF_ERROR(requests.wait(deadline));
    if (converted_out != nullptr)
      convert_from_float(float_recv.data(), converted_out, converted_dtype, float_recv.size());
    return Status::ok();
  }

  MpiRequests requests;
  // bf16/fp16 reductions: fp32 copies of the input and the result, converted back at the end.
  std::vector<float> float_send, float_recv;
  void* converted_out = nullptr;
  DType converted_dtype = DType::kF32;
  // all_to_all_v counts and displacements, as MPI ints.
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;

 protected:
  // An unfinished collective keeps its op out of the pool for good, as MPI may still use the
  // op's staging buffers and count arrays (MpiRequests::withdraw).
  bool recycle() override {
    if (!requests.withdraw()) return false;
    converted_out = nullptr;
    return true;
  }
};

// Owner of an op while it is being posted: an early error return releases (withdraws) it.
using MpiOpPtr = std::unique_ptr<MpiPendingOp, PendingOpRelease>;

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (a duplicate or a split result).
  MpiCommunicator(MPI_Comm comm, int rank, int size) : Communicator(rank, size), comm_(comm) {}
  ~MpiCommunicator() override {
    // After MPI_Finalize there is nothing to free (and freeing would be an error).
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

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
      op->requests.add_peer(is_send ? "send to" : "recv from", p2p.peer);
      // Messages above INT_MAX bytes travel as in-order chunks; an empty one still matches.
      size_t offset = 0;
      do {
        const size_t chunk = std::min(p2p.bytes - offset, kMaxMessage);
        char* data = static_cast<char*>(p2p.buffer) + offset;
        MPI_Request request = MPI_REQUEST_NULL;
        if (is_send) {
          SEQPAR_MPI_CHECK(
              MPI_Isend(data, static_cast<int>(chunk), MPI_BYTE, p2p.peer, kTag, comm_, &request));
          op->requests.add(request);
        } else {
          SEQPAR_MPI_CHECK(
              MPI_Irecv(data, static_cast<int>(chunk), MPI_BYTE, p2p.peer, kTag, comm_, &request));
          op->requests.add_recv(request, p2p.peer, chunk);
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
    op->requests.add(request);
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
    op->requests.add(request);
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
    op->requests.add(request);
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
    op->requests.add(request);
    return PendingOpPtr(std::move(op));
  }

  StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) override {
    SEQPAR_RETURN_IF_ERROR(require_int_count(bytes, "broadcast"));
    MpiOpPtr op = new_op("broadcast", false);
    op->requests.add_peer("root", root);
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ibcast(buffer, static_cast<int>(bytes), MPI_BYTE, root, comm_, &request));
    op->requests.add(request);
    return PendingOpPtr(std::move(op));
  }

  Status do_barrier(std::chrono::steady_clock::time_point deadline) override {
    MpiOpPtr op = new_op("barrier", false);
    MPI_Request request = MPI_REQUEST_NULL;
    SEQPAR_MPI_CHECK(MPI_Ibarrier(comm_, &request));
    op->requests.add(request);
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

bool mpi_library_cuda_aware() {
#if defined(MPIX_CUDA_AWARE_SUPPORT)
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

const char* mpi_transfer_mode(const Communicator& comm) {
  if (std::string_view(comm.backend_name()) != "mpi") return nullptr;
  if (!comm.device_memory()) return "host";
#ifdef SEQPAR_HAVE_CUDA
  if (is_cuda_aware_mpi_communicator(comm)) return "cuda-aware";
#endif
  return "staged";
}

StatusOr<std::unique_ptr<Communicator>> make_mpi_communicator(MPI_Comm comm, Device device,
                                                              MpiDeviceMode mode) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  SEQPAR_REQUIRE(initialized != 0, StatusCode::kInvalidArgument,
                 "make_mpi_communicator: MPI is not initialised (call MPI_Init first)");
  bool cuda_aware = false;
  if (device == Device::kCuda) {
#ifdef SEQPAR_HAVE_CUDA
    SEQPAR_REQUIRE(cuda_device_count() > 0, StatusCode::kUnsupported,
                   "make_mpi_communicator: device memory needs a CUDA device; none is visible");
#ifdef SEQPAR_CUDA_EMULATION
    constexpr bool kDevicePointersAreHostPointers = true;
#else
    constexpr bool kDevicePointersAreHostPointers = false;
#endif
    const char* env = std::getenv("SEQPAR_MPI_CUDA_AWARE");
    const std::string_view value = env != nullptr ? env : "";
    const bool env_staged = value == "0" || value == "false" || value == "off" || value == "no";
    if (mode == MpiDeviceMode::kCudaAware) {
      SEQPAR_REQUIRE(mpi_library_cuda_aware() || kDevicePointersAreHostPointers,
                     StatusCode::kUnsupported,
                     "make_mpi_communicator: CUDA-aware mode asked for, but this MPI library "
                     "does not report CUDA support");
      cuda_aware = true;
    } else if (mode == MpiDeviceMode::kAuto) {
      cuda_aware = !env_staged && mpi_library_cuda_aware();
    }
#else
    (void)mode;
    return SEQPAR_FAIL(StatusCode::kUnsupported,
                       "make_mpi_communicator: device memory needs a build with CUDA");
#endif
  }
  MPI_Comm duplicate = MPI_COMM_NULL;
  SEQPAR_MPI_CHECK(MPI_Comm_dup(comm, &duplicate));
#ifdef SEQPAR_HAVE_CUDA
  if (device == Device::kCuda) return adopt_mpi_device_communicator(duplicate, cuda_aware);
#endif
  (void)cuda_aware;
  return MpiCommunicator::adopt(duplicate);
}

}  // namespace seqpar
