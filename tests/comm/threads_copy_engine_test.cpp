// The threads backend's copy engine: a posted transfer completes while its receiver computes (no
// wait needed), SEQPAR_THREADS_COPY_ENGINE=0 turns that off, and many overlapped exchanges, with
// the engine and the waiting ranks racing for the copies, all arrive intact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "comm/threads_communicator.hpp"

namespace seqpar {
namespace {

using std::chrono::milliseconds;

// Rank 1 sends 1 MiB to rank 0 and waits for its send; rank 0 posts the receive, then does not
// wait until rank 1's send wait has returned (or 10 s passed). Only a copy made by someone other
// than rank 0 can finish rank 1's send before rank 0 waits.
Status send_finishes_before_the_receiver_waits(milliseconds timeout, std::atomic<int>& send_done) {
  return run_threads(2, [&](Communicator& comm) -> Status {
    comm.set_timeout(timeout);
    std::vector<uint8_t> buffer(size_t{1} << 20);
    if (comm.rank() == 1) {
      for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<uint8_t>(i * 7 + 3);
      const P2POp send[] = {P2POp::send(0, buffer.data(), buffer.size())};
      const Status sent = comm.exchange(send);
      send_done = sent.is_ok() ? 1 : -1;
      return sent;
    }
    Request request;
    const P2POp recv[] = {P2POp::recv(1, buffer.data(), buffer.size())};
    SEQPAR_RETURN_IF_ERROR(comm.start_exchange(recv, request));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (send_done == 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(milliseconds(1));  // "computing", not waiting
    }
    SEQPAR_RETURN_IF_ERROR(comm.wait(request));
    for (size_t i = 0; i < buffer.size(); ++i) {
      SEQPAR_REQUIRE(buffer[i] == static_cast<uint8_t>(i * 7 + 3), StatusCode::kInternal, "byte ",
                     i, " is wrong");
    }
    return Status::ok();
  });
}

TEST(ThreadsCopyEngine, SendCompletesWhileTheReceiverComputes) {
  std::atomic<int> send_done{0};
  const Status status = send_finishes_before_the_receiver_waits(milliseconds(20'000), send_done);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(send_done.load(), 1);
}

TEST(ThreadsCopyEngine, WithTheEngineOffTheCopyWaitsForTheReceiver) {
  setenv("SEQPAR_THREADS_COPY_ENGINE", "0", 1);
  std::atomic<int> send_done{0};
  const Status status = send_finishes_before_the_receiver_waits(milliseconds(300), send_done);
  unsetenv("SEQPAR_THREADS_COPY_ENGINE");
  // Nobody copies while rank 0 sleeps: rank 1's send times out, and rank 0's receive then fails.
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.to_string();
  EXPECT_EQ(send_done.load(), -1);
}

std::atomic<uint64_t> g_sink{0};  // keeps the busy work

// Deterministic busy work, `units` of a few microseconds each.
uint64_t compute(int units) {
  uint64_t x = static_cast<uint64_t>(units) + 1;
  for (int i = 0; i < units * 200; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}

uint8_t payload(int src, int iteration, size_t i) {
  return static_cast<uint8_t>(src * 31 + iteration * 7 + static_cast<int>(i % 251));
}

// P ranks, many iterations of a two-way ring exchange whose sizes and compute vary by rank and
// iteration, posting order varies (sends or receives first) and some ranks compute before they
// wait: the engine and the waiting ranks race for the copies. Every byte is checked.
TEST(ThreadsCopyEngine, ManyOverlappedExchangesArriveIntact) {
  constexpr int kRanks = 4;
  constexpr int kIterations = 300;
  const Status status = run_threads(kRanks, [](Communicator& comm) -> Status {
    comm.set_timeout(milliseconds(30'000));
    const int me = comm.rank();
    const int next = (me + 1) % kRanks;
    const int prev = (me + kRanks - 1) % kRanks;
    constexpr size_t kMaxBytes = size_t{256} << 10;
    std::vector<uint8_t> to_next(kMaxBytes), to_prev(kMaxBytes), from_prev(kMaxBytes),
        from_next(kMaxBytes);
    uint64_t sink = 0;
    for (int it = 0; it < kIterations; ++it) {
      // The size of a message depends on its sender and the iteration, so both sides agree.
      auto bytes_from = [&](int src) {
        return static_cast<size_t>((src * 7919 + it * 104729) % static_cast<int>(kMaxBytes)) + 1;
      };
      const size_t send_bytes = bytes_from(me);
      for (size_t i = 0; i < send_bytes; ++i) to_next[i] = to_prev[i] = payload(me, it, i);
      const P2POp sends[] = {P2POp::send(next, to_next.data(), send_bytes),
                             P2POp::send(prev, to_prev.data(), send_bytes)};
      const P2POp recvs[] = {P2POp::recv(prev, from_prev.data(), bytes_from(prev)),
                             P2POp::recv(next, from_next.data(), bytes_from(next))};
      Request first, second;
      const bool sends_first = (me + it) % 2 == 0;
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(sends_first ? sends : recvs, first));
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(sends_first ? recvs : sends, second));
      sink += compute((me * 13 + it * 5) % 40);
      SEQPAR_RETURN_IF_ERROR(comm.wait(it % 3 == 0 ? second : first));
      SEQPAR_RETURN_IF_ERROR(comm.wait(it % 3 == 0 ? first : second));
      for (const auto& [src, data] : {std::pair{prev, &from_prev}, std::pair{next, &from_next}}) {
        for (size_t i = 0; i < bytes_from(src); ++i) {
          SEQPAR_REQUIRE((*data)[i] == payload(src, it, i), StatusCode::kInternal, "iteration ", it,
                         ": byte ", i, " from rank ", src, " is wrong");
        }
      }
    }
    g_sink.fetch_add(sink, std::memory_order_relaxed);
    return Status::ok();
  });
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

}  // namespace
}  // namespace seqpar
