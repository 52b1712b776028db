// Threads backend: every op for P in {1, 2, 3, 4, 8}, plus timeouts, abort, exceptions,
// mismatches and argument validation.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "comm/threads/threads_communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Runs `check` on P thread-ranks with a timeout short enough that a bug fails instead of hanging.
Status run_check(int ranks, Status (*check)(Communicator&)) {
  return run_threads(ranks, [check](Communicator& comm) {
    comm.set_timeout(milliseconds(20'000));
    return check(comm);
  });
}

class ThreadsCommTest : public ::testing::TestWithParam<int> {};

TEST_P(ThreadsCommTest, ExchangeRing) {
  SEQPAR_EXPECT_OK(run_check(GetParam(), check_exchange_ring));
}
TEST_P(ThreadsCommTest, AllToAllEqual) {
  SEQPAR_EXPECT_OK(run_check(GetParam(), check_all_to_all_equal));
}
TEST_P(ThreadsCommTest, AllToAllUneven) {
  SEQPAR_EXPECT_OK(run_check(GetParam(), check_all_to_all_uneven));
}
TEST_P(ThreadsCommTest, AllGather) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_all_gather)); }
TEST_P(ThreadsCommTest, ReduceScatter) {
  SEQPAR_EXPECT_OK(run_check(GetParam(), check_reduce_scatter));
}
TEST_P(ThreadsCommTest, AllReduce) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_all_reduce)); }
TEST_P(ThreadsCommTest, Broadcast) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_broadcast)); }
TEST_P(ThreadsCommTest, Barrier) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_barrier)); }
TEST_P(ThreadsCommTest, Split) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_split)); }
TEST_P(ThreadsCommTest, NonBlocking) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_nonblocking)); }
TEST_P(ThreadsCommTest, Stats) { SEQPAR_EXPECT_OK(run_check(GetParam(), check_stats)); }

TEST_P(ThreadsCommTest, BarrierSeparatesBeforeAndAfter) {
  const int p = GetParam();
  std::atomic<int> arrived{0};
  SEQPAR_EXPECT_OK(run_threads(p, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(20'000));
    for (int round = 1; round <= 5; ++round) {
      arrived.fetch_add(1);
      SEQPAR_RETURN_IF_ERROR(comm.barrier());
      const int seen = arrived.load();
      SEQPAR_REQUIRE(seen >= round * p, StatusCode::kInternal, "barrier let rank ", comm.rank(),
                     " through with ", seen, " arrivals in round ", round);
      SEQPAR_RETURN_IF_ERROR(comm.barrier());
    }
    return Status::ok();
  }));
}

// Child groups of a split waited in different orders on different ranks.
TEST_P(ThreadsCommTest, WaitsAcrossGroupsInAnyOrder) {
  SEQPAR_EXPECT_OK(run_threads(GetParam(), [](Communicator& comm) {
    comm.set_timeout(milliseconds(20'000));
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> child, comm.split(0, comm.rank()));
    int64_t parent_sum = 1, child_sum = 1;
    Request on_parent, on_child;
    SEQPAR_RETURN_IF_ERROR(
        comm.start_all_reduce(&parent_sum, &parent_sum, 1, DType::kI64, ReduceOp::kSum, on_parent));
    SEQPAR_RETURN_IF_ERROR(
        child->start_all_reduce(&child_sum, &child_sum, 1, DType::kI64, ReduceOp::kSum, on_child));
    if (comm.rank() % 2 == 0) {
      SEQPAR_RETURN_IF_ERROR(comm.wait(on_parent));
      SEQPAR_RETURN_IF_ERROR(child->wait(on_child));
    } else {
      SEQPAR_RETURN_IF_ERROR(child->wait(on_child));
      SEQPAR_RETURN_IF_ERROR(comm.wait(on_parent));
    }
    SEQPAR_REQUIRE(parent_sum == comm.size() && child_sum == comm.size(), StatusCode::kInternal,
                   "sums ", parent_sum, " and ", child_sum);
    return Status::ok();
  }));
}

INSTANTIATE_TEST_SUITE_P(comm, ThreadsCommTest, ::testing::Values(1, 2, 3, 4, 8));

TEST(comm_threads_failures, SendWithoutRecvTimesOut) {
  std::vector<Status> results(2);
  const auto start = Clock::now();
  const Status status = run_threads(2, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(200));
    if (comm.rank() == 1) return Status::ok();  // never posts the matching recv
    char byte = 1;
    const P2POp ops[] = {P2POp::send(1, &byte, 1)};
    return comm.exchange(ops);
  });
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
  EXPECT_NE(status.message().find("rank 0"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("send to rank 1"), std::string::npos) << status.message();
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
}

TEST(comm_threads_failures, RecvWithoutSendTimesOut) {
  const auto start = Clock::now();
  const Status status = run_threads(2, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(200));
    if (comm.rank() == 0) return Status::ok();
    char byte = 0;
    const P2POp ops[] = {P2POp::recv(0, &byte, 1)};
    return comm.exchange(ops);
  });
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
  EXPECT_NE(status.message().find("no matching send"), std::string::npos) << status.message();
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
}

TEST(comm_threads_failures, CollectiveTimeoutNamesMissingRank) {
  const Status status = run_threads(3, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(200));
    if (comm.rank() == 2) return Status::ok();
    return comm.barrier();
  });
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
  EXPECT_NE(status.message().find("ranks [2]"), std::string::npos) << status.message();
}

TEST(comm_threads_failures, FailingRankAbortsTheOthers) {
  std::vector<Status> seen(4);
  const auto start = Clock::now();
  const Status status = run_threads(4, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(30'000));
    if (comm.rank() == 2) return SEQPAR_FAIL(StatusCode::kInvalidArgument, "bad shape on purpose");
    float value = 1.0f;
    Status result = comm.all_reduce(&value, &value, 1, DType::kF32, ReduceOp::kSum);
    seen[static_cast<size_t>(comm.rank())] = result;
    return result;
  });
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.to_string();
  EXPECT_EQ(status.message().rfind("rank 2: ", 0), 0u) << status.message();
  for (int r : {0, 1, 3}) {
    EXPECT_EQ(seen[static_cast<size_t>(r)].code(), StatusCode::kAborted)
        << seen[static_cast<size_t>(r)].to_string();
    EXPECT_NE(seen[static_cast<size_t>(r)].message().find("bad shape on purpose"),
              std::string::npos);
  }
}

TEST(comm_threads_failures, AbortReachesChildGroups) {
  const auto start = Clock::now();
  const Status status = run_threads(4, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(30'000));
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> child, comm.split(comm.rank() % 2, 0));
    if (comm.rank() == 3) return SEQPAR_FAIL(StatusCode::kNumericError, "NaN on purpose");
    return child->barrier();
  });
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  EXPECT_EQ(status.code(), StatusCode::kNumericError) << status.to_string();
}

TEST(comm_threads_failures, ExceptionBecomesInternalError) {
  const Status status = run_threads(3, [&](Communicator& comm) -> Status {
    comm.set_timeout(milliseconds(30'000));
    if (comm.rank() == 1) throw std::runtime_error("thrown on purpose");
    return comm.barrier();
  });
  EXPECT_EQ(status.code(), StatusCode::kInternal) << status.to_string();
  EXPECT_NE(status.message().find("thrown on purpose"), std::string::npos) << status.message();
  EXPECT_EQ(status.message().rfind("rank 1: ", 0), 0u) << status.message();
}

TEST(comm_threads_failures, SizeMismatchFailsBothSides) {
  std::vector<Status> seen(2);
  const Status status = run_threads(2, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(10'000));
    std::vector<char> buffer(8);
    const P2POp send_8[] = {P2POp::send(1, buffer.data(), 8)};
    const P2POp recv_4[] = {P2POp::recv(0, buffer.data(), 4)};
    Status result = comm.rank() == 0 ? comm.exchange(send_8) : comm.exchange(recv_4);
    seen[static_cast<size_t>(comm.rank())] = result;
    return result;
  });
  EXPECT_EQ(status.code(), StatusCode::kMismatch) << status.to_string();
  EXPECT_EQ(seen[0].code(), StatusCode::kMismatch) << seen[0].to_string();
  EXPECT_EQ(seen[1].code(), StatusCode::kMismatch) << seen[1].to_string();
}

TEST(comm_threads_failures, CollectiveMismatchIsReported) {
  const Status status = run_threads(2, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(10'000));
    std::vector<char> buffer(16);
    if (comm.rank() == 0) return comm.broadcast(buffer.data(), 8, 0);
    return comm.all_gather(buffer.data(), buffer.data() + 8, 8);
  });
  EXPECT_EQ(status.code(), StatusCode::kMismatch) << status.to_string();
}

// Ops are pooled: a Request dropped unwaited withdraws its send before the op is reused, so the
// receiver sees the send given up (and nothing lands in its buffer), and later exchanges work.
TEST(comm_threads_failures, DroppedRequestIsWithdrawnBeforeItsOpIsReused) {
  Status dropped_send_seen;
  const Status status = run_threads(2, [&](Communicator& comm) {
    comm.set_timeout(milliseconds(10'000));
    std::vector<char> sent(16, 7), received(16, 0);
    if (comm.rank() == 0) {
      Request dropped;
      const P2POp send[] = {P2POp::send(1, sent.data(), sent.size())};
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(send, dropped));
      dropped = Request();
      std::fill(sent.begin(), sent.end(), 9);  // the buffer is ours again
    }
    SEQPAR_RETURN_IF_ERROR(comm.barrier());
    if (comm.rank() == 1) {
      const P2POp recv[] = {P2POp::recv(0, received.data(), received.size())};
      dropped_send_seen = comm.exchange(recv);
      SEQPAR_REQUIRE(std::count(received.begin(), received.end(), 0) == 16, StatusCode::kInternal,
                     "a withdrawn send was copied");
    }
    const int peer = 1 - comm.rank();
    const P2POp ops[] = {P2POp::send(peer, sent.data(), sent.size()),
                         P2POp::recv(peer, received.data(), received.size())};
    SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
    const char expected = comm.rank() == 0 ? 7 : 9;
    SEQPAR_REQUIRE(std::count(received.begin(), received.end(), expected) == 16,
                   StatusCode::kInternal, "rank ", comm.rank(), " got wrong data after reuse");
    return Status::ok();
  });
  SEQPAR_EXPECT_OK(status);
  EXPECT_EQ(dropped_send_seen.code(), StatusCode::kAborted) << dropped_send_seen.to_string();
  EXPECT_NE(dropped_send_seen.message().find("gave up"), std::string::npos)
      << dropped_send_seen.message();
}

// A Request must not outlive its Communicator; one that does is withdrawn and deleted when
// dropped, instead of going back to the pool that is gone (sanitizer builds check the memory).
TEST(comm_threads_failures, RequestOutlivingItsCommunicatorIsWithdrawn) {
  Request request;
  char byte = 1;
  {
    auto made = make_threads_communicators(2);
    ASSERT_TRUE(made.is_ok()) << made.status().to_string();
    std::vector<std::unique_ptr<Communicator>> comms = std::move(made).value();
    const P2POp send[] = {P2POp::send(1, &byte, 1)};
    SEQPAR_EXPECT_OK(comms[0]->start_exchange(send, request));
  }
  EXPECT_TRUE(request.pending());
  request = Request();
  EXPECT_FALSE(request.pending());
}

TEST(comm_threads_failures, InvalidArgumentsAreRejected) {
  auto comms = make_threads_communicators(2);
  ASSERT_TRUE(comms.is_ok()) << comms.status().to_string();
  Communicator& comm = *comms.value()[0];
  char byte = 0;
  const P2POp bad_peer[] = {P2POp::send(2, &byte, 1)};
  EXPECT_EQ(comm.exchange(bad_peer).code(), StatusCode::kInvalidArgument);
  const P2POp null_buffer[] = {P2POp::recv(1, nullptr, 4)};
  EXPECT_EQ(comm.exchange(null_buffer).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.broadcast(&byte, 1, 5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.broadcast(&byte, 1, -1).code(), StatusCode::kInvalidArgument);
  const size_t sizes[] = {1};
  EXPECT_EQ(comm.all_to_all_v(&byte, sizes, sizes, &byte, sizes, sizes).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.all_reduce(&byte, &byte, 1, static_cast<DType>(42), ReduceOp::kSum).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.stats().total_calls(), 0);
}

TEST(comm_threads_failures, DefaultTimeoutComesFromTheEnvironment) {
  ::setenv("SEQPAR_TIMEOUT_S", "2.5", 1);
  EXPECT_EQ(Communicator::default_comm_timeout(), milliseconds(2500));
  ::setenv("SEQPAR_TIMEOUT_S", "nonsense", 1);
  EXPECT_EQ(Communicator::default_comm_timeout(), milliseconds(300'000));
  ::unsetenv("SEQPAR_TIMEOUT_S");
  EXPECT_EQ(Communicator::default_comm_timeout(), milliseconds(300'000));
}

}  // namespace
}  // namespace seqpar::testing
