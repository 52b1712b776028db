// The allocation-free exchange step and collective checks (alloc_free_checks.hpp).
#include "alloc_free_checks.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "comm_buffers.hpp"
#include "counting_new.hpp"

namespace seqpar::testing {
namespace {

constexpr int kWarmupSteps = 3;
constexpr int kCountedSteps = 20;
constexpr int kCountedRounds = 10;  // of the collectives, after kWarmupSteps rounds
constexpr size_t kBlockBytes = 96;  // per message; the K, V and share blocks alike

// Byte i of the block `sender` sends as message `tag` in step `step`.
char block_byte(int sender, int step, int tag, size_t i) {
  return static_cast<char>(sender * 31 + step * 7 + tag * 3 + static_cast<int>(i));
}

void fill_block(std::vector<char>& block, int sender, int step, int tag) {
  for (size_t i = 0; i < block.size(); ++i) block[i] = block_byte(sender, step, tag, i);
}

bool block_matches(const std::vector<char>& block, int sender, int step, int tag) {
  for (size_t i = 0; i < block.size(); ++i) {
    if (block[i] != block_byte(sender, step, tag, i)) return false;
  }
  return true;
}

}  // namespace

Status check_exchange_steps_allocate_nothing(Communicator& comm) {
  enum Tag { kK = 0, kV, kShare };
  const int p = comm.size();
  const int rank = comm.rank();
  const int next = (rank + 1) % p;
  const int prev = (rank + p - 1) % p;
  std::vector<char> k(kBlockBytes), v(kBlockBytes), share(kBlockBytes);
  std::vector<char> k_in(kBlockBytes), v_in(kBlockBytes), share_in(kBlockBytes);
  CommBuffers mem(comm);
  char* k_at = mem.place(k);
  char* v_at = mem.place(v);
  char* share_at = mem.place(share);
  char* k_in_at = mem.place(k_in);
  char* v_in_at = mem.place(v_in);
  char* share_in_at = mem.place(share_in);
  SEQPAR_RETURN_IF_ERROR(mem.status());
  int64_t allocations = 0;
  for (int step = 0; step < kWarmupSteps + kCountedSteps; ++step) {
    fill_block(k, rank, step, kK);
    fill_block(v, rank, step, kV);
    fill_block(share, rank, step, kShare);
    SEQPAR_RETURN_IF_ERROR(mem.push());
    const int s = 1 + step % std::max(p - 1, 1);
    const int share_to = (rank + p - s) % p;
    const int share_from = (rank + s) % p;
    const P2POp ring_ops[] = {
        P2POp::send(next, k_at, kBlockBytes), P2POp::send(next, v_at, kBlockBytes),
        P2POp::recv(prev, k_in_at, kBlockBytes), P2POp::recv(prev, v_in_at, kBlockBytes)};
    const P2POp share_ops[] = {P2POp::send(share_to, share_at, kBlockBytes),
                               P2POp::recv(share_from, share_in_at, kBlockBytes)};
    Request ring, shares;
    const bool counted = step >= kWarmupSteps;
    if (counted) start_counting_allocations();
    Status posted = comm.start_exchange(ring_ops, ring);
    if (posted.is_ok()) posted = comm.start_exchange(share_ops, shares);
    // Both wait orders: a rank's waits drive all of its pending ops.
    Request& first = step % 2 == 0 ? ring : shares;
    Request& second = step % 2 == 0 ? shares : ring;
    const Status first_waited = comm.wait(first);
    const Status second_waited = comm.wait(second);
    if (counted) allocations += stop_counting_allocations();
    SEQPAR_RETURN_IF_ERROR(posted);
    SEQPAR_RETURN_IF_ERROR(first_waited);
    SEQPAR_RETURN_IF_ERROR(second_waited);
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
    SEQPAR_REQUIRE(block_matches(k_in, prev, step, kK) && block_matches(v_in, prev, step, kV) &&
                       block_matches(share_in, share_from, step, kShare),
                   StatusCode::kInternal, "rank ", rank, " step ", step, ": wrong data from rank ",
                   prev, " or rank ", share_from);
  }
  SEQPAR_REQUIRE(allocations == 0, StatusCode::kInternal, "rank ", rank, " made ", allocations,
                 " C++ heap allocations in ", kCountedSteps, " warm exchange steps (expected 0)");
  return Status::ok();
}

Status check_collectives_allocate_nothing(Communicator& comm) {
  constexpr size_t kCount = 24;  // elements per rank slice
  const size_t p = static_cast<size_t>(comm.size());
  const int rank = comm.rank();
  std::vector<float> values(kCount * p), reduced(kCount * p), slice(kCount);
  std::vector<uint16_t> bf16_values(kCount), bf16_reduced(kCount);
  std::vector<char> gathered(kCount * p), sent(kCount * p), received(kCount * p);
  // all_to_all_v: rank r gets r + 1 bytes from every rank, at offset 8 * source.
  std::vector<size_t> send_bytes(p), send_offsets(p), recv_bytes(p), recv_offsets(p);
  for (size_t q = 0; q < p; ++q) {
    send_bytes[q] = q + 1;
    send_offsets[q] = 8 * q;
    recv_bytes[q] = static_cast<size_t>(rank) + 1;
    recv_offsets[q] = 8 * q;
  }
  const float expected_sum = static_cast<float>(p * (p + 1) / 2);
  CommBuffers mem(comm);
  float* values_at = mem.place(values);
  float* reduced_at = mem.place(reduced);
  float* slice_at = mem.place(slice);
  uint16_t* bf16_values_at = mem.place(bf16_values);
  uint16_t* bf16_reduced_at = mem.place(bf16_reduced);
  char* gathered_at = mem.place(gathered);
  char* sent_at = mem.place(sent);
  char* received_at = mem.place(received);
  SEQPAR_RETURN_IF_ERROR(mem.status());
  int64_t allocations = 0;
  for (int round = 0; round < kWarmupSteps + kCountedRounds; ++round) {
    std::fill(values.begin(), values.end(), static_cast<float>(rank + 1));
    std::fill(bf16_values.begin(), bf16_values.end(), uint16_t{0x3f80});  // 1.0 in bf16
    SEQPAR_RETURN_IF_ERROR(mem.push());
    const bool counted = round >= kWarmupSteps;
    if (counted) start_counting_allocations();
    Status status =
        comm.all_reduce(values_at, values_at, values.size(), DType::kF32, ReduceOp::kSum);
    Request started;
    if (status.is_ok()) {
      status = comm.start_all_reduce(bf16_values_at, bf16_reduced_at, kCount, DType::kBF16,
                                     ReduceOp::kMax, started);
    }
    if (status.is_ok()) status = comm.wait(started);
    if (status.is_ok()) status = comm.all_gather(sent_at, gathered_at, kCount);
    if (status.is_ok()) {
      status = comm.reduce_scatter(reduced_at, slice_at, kCount, DType::kF32, ReduceOp::kSum);
    }
    if (status.is_ok()) status = comm.broadcast(sent_at, kCount, round % comm.size());
    if (status.is_ok()) status = comm.barrier();
    if (status.is_ok()) status = comm.start_all_to_all(sent_at, received_at, kCount, started);
    if (status.is_ok()) status = comm.wait(started);
    if (status.is_ok()) {
      status = comm.all_to_all_v(sent_at, send_bytes, send_offsets, received_at, recv_bytes,
                                 recv_offsets);
    }
    if (counted) allocations += stop_counting_allocations();
    SEQPAR_RETURN_IF_ERROR(status);
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
    SEQPAR_REQUIRE(values.front() == expected_sum && values.back() == expected_sum,
                   StatusCode::kInternal, "rank ", rank, " round ", round, ": all_reduce gave ",
                   values.front(), ", expected ", expected_sum);
  }
  SEQPAR_REQUIRE(allocations == 0, StatusCode::kInternal, "rank ", rank, " made ", allocations,
                 " C++ heap allocations in ", kCountedRounds,
                 " warm rounds of the collectives (expected 0)");
  return Status::ok();
}

}  // namespace seqpar::testing
