#include "device_comm_checks.hpp"

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/host_reduce.hpp"
#include "comm_buffers.hpp"
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"

namespace seqpar::testing {
namespace {

constexpr size_t kMessageBytes = 4096;

// The byte rank `rank` sends in iteration `it` (never 0xEE, the scribble, nor 0xFF, the
// emulator's poison of unwritten device memory).
unsigned char message_byte(int rank, int it) {
  return static_cast<unsigned char>(1 + (rank * 37 + it * 11) % 200);
}

// An all-`value` check of `bytes` downloaded bytes.
Status expect_bytes(const std::vector<unsigned char>& got, size_t offset, size_t bytes,
                    unsigned char value, const std::string& what) {
  for (size_t i = 0; i < bytes; ++i) {
    SEQPAR_REQUIRE(got[offset + i] == value, StatusCode::kInternal, what, ": byte ", i, " is ",
                   int{got[offset + i]}, ", expected ", int{value});
  }
  return Status::ok();
}

// Downloads `log` on the compute stream and waits: the check's only host synchronisation.
StatusOr<std::vector<unsigned char>> download(DeviceBuffer& log, cudaStream_t compute) {
  std::vector<unsigned char> got(log.bytes());
  SEQPAR_CUDA_CHECK(
      cudaMemcpyAsync(got.data(), log.data(), got.size(), cudaMemcpyDeviceToHost, compute));
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(compute));
  return got;
}

// Element i of rank `rank`'s input: many significant bits, so sums round (in range for fp16 sums
// of a few ranks, and for i32).
std::vector<uint8_t> random_input(DType dtype, size_t count, int rank) {
  std::vector<uint8_t> data(count * dtype_size(dtype), 0);
  uint64_t state = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank + 1);
  for (size_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t n = static_cast<int64_t>((state >> 33) % 2000001) - 1000000;
    switch (dtype) {
      case DType::kF64:
        reinterpret_cast<double*>(data.data())[i] = static_cast<double>(n) / 997.0;
        break;
      case DType::kI32:
        reinterpret_cast<int32_t*>(data.data())[i] = static_cast<int32_t>(n);
        break;
      case DType::kI64:
        reinterpret_cast<int64_t*>(data.data())[i] = n * 1000003;
        break;
      default:
        store_float(data.data(), dtype, i, static_cast<float>(n) / 997.0f);
        break;
    }
  }
  return data;
}

}  // namespace

Status exchange_follows_the_compute_stream(Communicator& comm, int iterations) {
  const int p = comm.size();
  const int r = comm.rank();
  const int next = (r + 1) % p;
  const int prev = (r + p - 1) % p;
  const auto compute = static_cast<cudaStream_t>(comm.stream());
  DeviceBuffer send, recv, log;
  SEQPAR_RETURN_IF_ERROR(send.allocate(kMessageBytes));
  SEQPAR_RETURN_IF_ERROR(recv.allocate(kMessageBytes));
  SEQPAR_RETURN_IF_ERROR(log.allocate(kMessageBytes * static_cast<size_t>(iterations)));
  auto* log_at = static_cast<unsigned char*>(log.data());
  for (int it = 0; it < iterations; ++it) {
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(send.data(), 0xEE, kMessageBytes, compute));
    SEQPAR_CUDA_CHECK(cudaMemsetAsync(send.data(), message_byte(r, it), kMessageBytes, compute));
    const P2POp ops[] = {P2POp::send(next, send.data(), kMessageBytes),
                         P2POp::recv(prev, recv.data(), kMessageBytes)};
    SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(log_at + it * kMessageBytes, recv.data(), kMessageBytes,
                                      cudaMemcpyDeviceToDevice, compute));
  }
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<unsigned char> got, download(log, compute));
  for (int it = 0; it < iterations; ++it) {
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, it * kMessageBytes, kMessageBytes, message_byte(prev, it),
                     str_cat("rank ", r, " iteration ", it, " from rank ", prev)));
  }
  return Status::ok();
}

Status collectives_follow_the_compute_stream(Communicator& comm, int iterations) {
  constexpr size_t kCount = 256;  // i32 elements
  constexpr size_t kBytes = kCount * sizeof(int32_t);
  const int p = comm.size();
  const int r = comm.rank();
  const auto compute = static_cast<cudaStream_t>(comm.stream());
  const size_t gathered_bytes = kBytes * static_cast<size_t>(p);
  const size_t log_step = 2 * kBytes + gathered_bytes;
  DeviceBuffer input, sum, gathered, cast, log;
  SEQPAR_RETURN_IF_ERROR(input.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(sum.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(gathered.allocate(gathered_bytes));
  SEQPAR_RETURN_IF_ERROR(cast.allocate(kBytes));
  SEQPAR_RETURN_IF_ERROR(log.allocate(log_step * static_cast<size_t>(iterations)));
  auto* log_at = static_cast<unsigned char*>(log.data());
  // Small bytes, so that the sum of P of them is still one byte repeated.
  auto input_byte = [](int rank, int it) {
    return static_cast<unsigned char>(1 + (rank + it) % 9);
  };
  for (int it = 0; it < iterations; ++it) {
    for (void* buffer : {input.data(), sum.data(), cast.data()}) {
      SEQPAR_CUDA_CHECK(cudaMemsetAsync(buffer, 0xEE, kBytes, compute));
      SEQPAR_CUDA_CHECK(cudaMemsetAsync(buffer, input_byte(r, it), kBytes, compute));
    }
    SEQPAR_RETURN_IF_ERROR(
        comm.all_reduce(sum.data(), sum.data(), kCount, DType::kI32, ReduceOp::kSum));
    SEQPAR_RETURN_IF_ERROR(comm.all_gather(input.data(), gathered.data(), kBytes));
    SEQPAR_RETURN_IF_ERROR(comm.broadcast(cast.data(), kBytes, it % p));
    unsigned char* slot = log_at + it * log_step;
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(slot, sum.data(), kBytes, cudaMemcpyDeviceToDevice, compute));
    SEQPAR_CUDA_CHECK(
        cudaMemcpyAsync(slot + kBytes, cast.data(), kBytes, cudaMemcpyDeviceToDevice, compute));
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(slot + 2 * kBytes, gathered.data(), gathered_bytes,
                                      cudaMemcpyDeviceToDevice, compute));
  }
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<unsigned char> got, download(log, compute));
  for (int it = 0; it < iterations; ++it) {
    int total = 0;
    for (int q = 0; q < p; ++q) total += input_byte(q, it);
    const size_t at = it * log_step;
    const std::string where = str_cat("rank ", r, " iteration ", it);
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, at, kBytes, static_cast<unsigned char>(total), where + " all_reduce"));
    SEQPAR_RETURN_IF_ERROR(
        expect_bytes(got, at + kBytes, kBytes, input_byte(it % p, it), where + " broadcast"));
    for (int q = 0; q < p; ++q) {
      SEQPAR_RETURN_IF_ERROR(expect_bytes(got, at + 2 * kBytes + q * kBytes, kBytes,
                                          input_byte(q, it),
                                          str_cat(where, " all_gather slice ", q)));
    }
  }
  return Status::ok();
}

Status reductions_match_the_host_rule(Communicator& comm, size_t count) {
  const int p = comm.size();
  const size_t r = static_cast<size_t>(comm.rank());
  for (DType dtype :
       {DType::kF32, DType::kBF16, DType::kF16, DType::kF64, DType::kI32, DType::kI64}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      const size_t element = dtype_size(dtype);
      const size_t total = count * static_cast<size_t>(p);
      std::vector<std::vector<uint8_t>> inputs;
      std::vector<const void*> pointers;
      for (int q = 0; q < p; ++q) inputs.push_back(random_input(dtype, total, q));
      for (const auto& input : inputs) pointers.push_back(input.data());
      std::vector<uint8_t> expected(total * element);
      reduce_in_order(pointers, 0, total, dtype, op, expected.data());
      std::vector<uint8_t> input = inputs[r], reduced(total * element), slice(count * element);
      CommBuffers mem(comm);
      const uint8_t* input_at = mem.place(input);
      uint8_t* reduced_at = mem.place(reduced);
      uint8_t* slice_at = mem.place(slice);
      SEQPAR_RETURN_IF_ERROR(mem.status());
      SEQPAR_RETURN_IF_ERROR(comm.all_reduce(input_at, reduced_at, total, dtype, op));
      SEQPAR_RETURN_IF_ERROR(comm.reduce_scatter(input_at, slice_at, count, dtype, op));
      SEQPAR_RETURN_IF_ERROR(mem.fetch());
      const std::string what = str_cat(dtype_name(dtype), op == ReduceOp::kSum ? " sum" : " max");
      SEQPAR_REQUIRE(reduced == expected, StatusCode::kInternal, "rank ", r, " ", what,
                     ": all_reduce differs from the host rule");
      SEQPAR_REQUIRE(std::equal(slice.begin(), slice.end(),
                                expected.begin() + static_cast<ptrdiff_t>(r * slice.size())),
                     StatusCode::kInternal, "rank ", r, " ", what,
                     ": reduce_scatter differs from the host rule");
    }
  }
  return Status::ok();
}

}  // namespace seqpar::testing
#endif
