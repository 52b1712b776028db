// ThreadsCommunicator (the Communicator of one thread-rank, with its communication stream on
// device memory), make_threads_communicators and run_threads.
#include "comm/threads/threads_communicator.hpp"

#include <exception>
#include <numeric>
#include <system_error>
#include <thread>

#include "comm/threads/threads_group.hpp"
#include "comm/threads/threads_ops.hpp"
#include "core/log.hpp"

namespace seqpar {
namespace {

class ThreadsCommunicator final : public Communicator {
 public:
  // Rank `rank` of `group`; on device memory with a communication stream of its own.
  static StatusOr<std::unique_ptr<Communicator>> create(std::shared_ptr<ThreadsGroup> group,
                                                        int rank) {
    threads_device::Stream comm_stream = nullptr;
    if (group->domain().device_memory) {
      SEQPAR_ASSIGN_OR_RETURN(comm_stream, threads_device::create_stream());
    }
    return std::unique_ptr<Communicator>(
        new ThreadsCommunicator(std::move(group), rank, comm_stream));
  }

  ~ThreadsCommunicator() override { threads_device::destroy_stream(comm_stream_); }

  const char* backend_name() const override { return "threads"; }
  bool device_memory() const override { return group_->domain().device_memory; }

  void abort(const Status& reason) override {
    ThreadsDomain& domain = group_->domain();
    std::lock_guard<std::mutex> lock(domain.mutex);
    if (domain.aborted) return;
    SEQPAR_LOG_ERROR("threads communicator aborted: ", reason.to_string());
    domain.aborted = true;
    domain.abort_rank = group_->domain_rank(rank());
    domain.abort_reason = reason.to_string();
    domain.changed.notify_all();
  }

 protected:
  StatusOr<PendingOpPtr> post_exchange(std::span<const P2POp> ops) override {
    auto& op = exchange_ops_.acquire<ThreadsExchangeOp>(
        [&] { return std::make_unique<ThreadsExchangeOp>(group_, rank()); });
    std::lock_guard<std::mutex> lock(group_->domain().mutex);
    op.post(ops, timeout(), streams());
    return PendingOpPtr(&op);
  }

  StatusOr<PendingOpPtr> post_all_to_all_v(const void* send, std::span<const size_t> send_bytes,
                                           std::span<const size_t> send_offsets, void* recv,
                                           std::span<const size_t> recv_bytes,
                                           std::span<const size_t> recv_offsets) override {
    CollectiveArgs args;
    args.send = send;
    args.recv = recv;
    args.send_bytes = send_bytes;
    args.send_offsets = send_offsets;
    args.recv_bytes = recv_bytes;
    args.recv_offsets = recv_offsets;
    return post_collective(CollectiveKind::kAllToAllV, args);
  }

  StatusOr<PendingOpPtr> post_all_gather(const void* send, void* recv,
                                         size_t bytes_per_rank) override {
    CollectiveArgs args;
    args.send = send;
    args.recv = recv;
    args.size = bytes_per_rank;
    return post_collective(CollectiveKind::kAllGather, args);
  }

  StatusOr<PendingOpPtr> post_reduce_scatter(const void* send, void* recv, size_t count_per_rank,
                                             DType dtype, ReduceOp op) override {
    return post_collective(CollectiveKind::kReduceScatter,
                           reduction_args(send, recv, count_per_rank, dtype, op));
  }

  StatusOr<PendingOpPtr> post_all_reduce(const void* send, void* recv, size_t count, DType dtype,
                                         ReduceOp op) override {
    return post_collective(CollectiveKind::kAllReduce,
                           reduction_args(send, recv, count, dtype, op));
  }

  StatusOr<PendingOpPtr> post_broadcast(void* buffer, size_t bytes, int root) override {
    CollectiveArgs args;
    args.recv = buffer;
    args.size = bytes;
    args.root = root;
    return post_collective(CollectiveKind::kBroadcast, args);
  }

  Status do_barrier(std::chrono::steady_clock::time_point deadline) override {
    const PendingOpPtr op(&post_op(CollectiveKind::kBarrier, CollectiveArgs{}));
    return op->wait(deadline);
  }

  StatusOr<std::unique_ptr<Communicator>> do_split(int color, int key) override {
    CollectiveArgs args;
    args.color = color;
    args.key = key;
    ThreadsCollectiveOp& op = post_op(CollectiveKind::kSplit, args);
    const PendingOpPtr releases_op(&op);
    SEQPAR_RETURN_IF_ERROR(op.wait(deadline()));
    return create(op.split_group(), op.split_rank());
  }

 private:
  ThreadsCommunicator(std::shared_ptr<ThreadsGroup> group, int rank,
                      threads_device::Stream comm_stream)
      : Communicator(rank, group->size()), group_(std::move(group)), comm_stream_(comm_stream) {}

  // What a post is ordered with on device memory: set_stream's stream and our own.
  OpStreams streams() const {
    return {static_cast<threads_device::Stream>(stream()), comm_stream_};
  }

  static CollectiveArgs reduction_args(const void* send, void* recv, size_t count, DType dtype,
                                       ReduceOp op) {
    CollectiveArgs args;
    args.send = send;
    args.recv = recv;
    args.size = count;
    args.dtype = dtype;
    args.op = op;
    return args;
  }

  // Posts the next collective; the caller owns the op until it releases it.
  ThreadsCollectiveOp& post_op(CollectiveKind kind, const CollectiveArgs& args) {
    auto& op = collective_ops_.acquire<ThreadsCollectiveOp>(
        [&] { return std::make_unique<ThreadsCollectiveOp>(group_, rank()); });
    std::lock_guard<std::mutex> lock(group_->domain().mutex);
    op.post(next_collective_++, kind, args, timeout(), streams());
    return op;
  }

  StatusOr<PendingOpPtr> post_collective(CollectiveKind kind, const CollectiveArgs& args) {
    return PendingOpPtr(&post_op(kind, args));
  }

  std::shared_ptr<ThreadsGroup> group_;
  threads_device::Stream comm_stream_;  // device memory: where copies into our buffers run
  uint64_t next_collective_ = 0;        // sequence number of this rank's next collective
  OpPool exchange_ops_;                 // of ThreadsExchangeOp
  OpPool collective_ops_;               // of ThreadsCollectiveOp
};

// The error run_threads reports: the first non-kAborted failure, else the first failure.
Status root_cause(const std::vector<Status>& results) {
  int chosen = -1;
  for (size_t r = 0; r < results.size(); ++r) {
    if (results[r].is_ok()) continue;
    if (chosen < 0 || (results[static_cast<size_t>(chosen)].code() == StatusCode::kAborted &&
                       results[r].code() != StatusCode::kAborted)) {
      chosen = static_cast<int>(r);
    }
  }
  if (chosen < 0) return Status::ok();
  const Status& status = results[static_cast<size_t>(chosen)];
  return Status(status.code(), str_cat("rank ", chosen, ": ", status.message()));
}

}  // namespace

StatusOr<std::vector<std::unique_ptr<Communicator>>> make_threads_communicators(int ranks,
                                                                                Device device) {
  SEQPAR_REQUIRE(ranks >= 1, StatusCode::kInvalidArgument, "threads communicators: ranks = ", ranks,
                 " (need at least 1)");
  const bool on_device = device == Device::kCuda;
  if (on_device) {
    SEQPAR_REQUIRE(threads_device::built_with_cuda(), StatusCode::kUnsupported,
                   "threads communicators on device memory need a build with CUDA "
                   "(SEQPAR_HAVE_CUDA); this one has none");
    SEQPAR_REQUIRE(threads_device::visible_devices() > 0, StatusCode::kUnsupported,
                   "threads communicators on device memory: no CUDA device is visible");
    SEQPAR_REQUIRE(ranks <= threads_device::kMaxReduceRanks, StatusCode::kUnsupported,
                   "threads communicators on device memory: ", ranks, " ranks (at most ",
                   threads_device::kMaxReduceRanks, ", the ranks one device reduction combines)");
  }
  std::vector<int> domain_ranks(static_cast<size_t>(ranks));
  std::iota(domain_ranks.begin(), domain_ranks.end(), 0);
  const int cuda_device = on_device ? threads_device::current_device() : ThreadsDomain::kHostMemory;
  auto group = std::make_shared<ThreadsGroup>(
      std::make_shared<ThreadsDomain>(ranks, threads_copy_engine_enabled(), cuda_device),
      std::move(domain_ranks));
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < ranks; ++r) {
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                            ThreadsCommunicator::create(group, r));
    comms.push_back(std::move(comm));
  }
  return comms;
}

Status run_threads(int ranks, const std::function<Status(Communicator&)>& body, Device device) {
  SEQPAR_REQUIRE(ranks >= 1, StatusCode::kInvalidArgument, "run_threads: ranks = ", ranks,
                 " (need at least 1)");
  SEQPAR_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Communicator>> comms,
                          make_threads_communicators(ranks, device));
  // Device memory: every rank's thread on this thread's device, where the communicators are.
  const int cuda_device = device == Device::kCuda ? threads_device::current_device() : 0;
  std::vector<Status> results(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(ranks));
  // A thread the system refuses (std::system_error) must not unwind past the ones already
  // running: abort the group so they fail fast, join them, and report it.
  const auto start_failed = [&](int rank, const char* what) {
    const Status failed =
        SEQPAR_FAIL(StatusCode::kOutOfMemory, "run_threads: could not start rank ", rank,
                    "'s thread of ", ranks, ": ", what);
    comms[static_cast<size_t>(rank)]->abort(failed);
    for (std::thread& thread : threads) thread.join();
    return failed;
  };
  for (int r = 0; r < ranks; ++r) {
    try {
      threads.emplace_back([&, r] {
        const size_t i = static_cast<size_t>(r);
        set_log_rank(r);
        try {
          results[i] = device == Device::kCuda ? threads_device::use_device(cuda_device) : Status();
          if (results[i].is_ok()) results[i] = body(*comms[i]);
        } catch (const std::exception& e) {
          results[i] = SEQPAR_FAIL(StatusCode::kInternal, "exception: ", e.what());
        } catch (...) {
          results[i] = SEQPAR_FAIL(StatusCode::kInternal, "unknown exception");
        }
        if (!results[i].is_ok()) comms[i]->abort(results[i]);
        set_log_rank(-1);
      });
    } catch (const std::system_error& e) {
      return start_failed(r, e.what());
    }
  }
  for (std::thread& thread : threads) thread.join();
  return root_cause(results);
}

}  // namespace seqpar
