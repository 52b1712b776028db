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

#include "comm/threads/threads_communicator.hpp"

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

// A request dropped unwaited withdraws its op; from then on nothing may write its receive
// buffer, even while the engine is busy with the op's send. Rank 0 posts {send 64 MiB to 1, recv
// 16 MiB from 2}; rank 1's receive makes the engine copy the send; rank 2 then posts its send, and
// rank 0 drops its request mid-copy and reuses the pooled op at once for a 16-byte receive. Before
// the fix, the engine, done with the send, started copying rank 2's 16 MiB into the dropped
// buffer (and then wrote through the reused op: a crash).
TEST(ThreadsCopyEngine, DroppedRequestIsNeverWrittenAfterItsRelease) {
  auto made = make_threads_communicators(3);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  auto comms = std::move(made).value();
  constexpr size_t kSend = size_t{64} << 20, kRecv = size_t{16} << 20;
  std::vector<unsigned char> send0(kSend, 0x11), recv1(kSend, 0), send2(kRecv, 0x22),
      recv0(kRecv, 0xAB), small(16, 0);
  std::atomic<int> stage{0};
  std::atomic<bool> stop{false};
  bool written_after_release = false;
  auto wait_for = [&](int value) {  // bounded, so a failed post cannot hang the test
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (stage.load() < value && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::yield();
    }
  };
  std::thread rank0([&] {
    Communicator& c = *comms[0];
    c.set_timeout(milliseconds(300));
    {
      Request dropped;
      const P2POp ops[] = {P2POp::send(1, send0.data(), kSend),
                           P2POp::recv(2, recv0.data(), kRecv)};
      EXPECT_TRUE(c.start_exchange(ops, dropped).is_ok());
      stage = 1;
      wait_for(3);
      std::this_thread::sleep_for(milliseconds(2));
    }                // dropped unwaited: withdrawn
    Request reused;  // the pooled op again
    const P2POp again[] = {P2POp::recv(2, small.data(), small.size())};
    EXPECT_TRUE(c.start_exchange(again, reused).is_ok());
    (void)c.wait(reused);  // no matching send: times out
    const unsigned char at_release = recv0[kRecv - 1];
    std::this_thread::sleep_for(milliseconds(200));
    written_after_release = recv0[kRecv - 1] != at_release || recv0[0] != at_release;
    stop = true;
  });
  std::thread rank1([&] {
    Communicator& c = *comms[1];
    c.set_timeout(milliseconds(5000));
    wait_for(1);
    Request request;
    const P2POp ops[] = {P2POp::recv(0, recv1.data(), kSend)};
    EXPECT_TRUE(c.start_exchange(ops, request).is_ok());
    stage = 2;
    while (!stop) std::this_thread::sleep_for(milliseconds(1));
    (void)c.wait(request);  // done, or aborted if the send was withdrawn before its copy began
  });
  std::thread rank2([&] {
    Communicator& c = *comms[2];
    c.set_timeout(milliseconds(1000));
    wait_for(2);
    std::this_thread::sleep_for(milliseconds(1));
    Request request;
    const P2POp ops[] = {P2POp::send(0, send2.data(), kRecv)};
    EXPECT_TRUE(c.start_exchange(ops, request).is_ok());
    stage = 3;
    while (!stop) std::this_thread::sleep_for(milliseconds(1));
    (void)c.wait(request);  // its receive was withdrawn: times out
  });
  rank0.join();
  rank1.join();
  rank2.join();
  EXPECT_FALSE(written_after_release) << "the engine wrote a withdrawn request's buffer";
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
