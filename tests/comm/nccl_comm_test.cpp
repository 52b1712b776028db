// NCCL backend under mpirun, one rank per GPU (skipped without enough GPUs): ring exchange,
// all_reduce and split on device buffers, waited both on the host (the legacy default stream)
// and through a compute stream (set_stream: no host sync); and the shared comm checks on device
// memory, on a compute stream of the rank's own.
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "comm/nccl_communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {
namespace {

// An NCCL communicator on this rank's GPU, or nullptr (and the test skipped) without one.
std::unique_ptr<Communicator> nccl_or_skip() {
  int devices = 0, size = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < size) return nullptr;
  auto comm = bootstrap_nccl_communicator(MPI_COMM_WORLD, rank);
  EXPECT_TRUE(comm.is_ok()) << comm.status().to_string();
  return comm.is_ok() ? std::move(comm).value() : nullptr;
}

TEST(comm_nccl, RingExchangeAndAllReduce) {
  std::unique_ptr<Communicator> comm = nccl_or_skip();
  if (comm == nullptr) GTEST_SKIP() << "needs one GPU per rank";
  ASSERT_TRUE(comm->device_memory());
  const int p = comm->size();
  const int r = comm->rank();
  const size_t count = 1000;
  std::vector<int64_t> host(count);
  for (size_t i = 0; i < count; ++i) host[i] = r * 100000 + static_cast<int64_t>(i);
  int64_t* send = nullptr;
  int64_t* recv = nullptr;
  ASSERT_EQ(cudaMalloc(&send, count * sizeof(int64_t)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&recv, count * sizeof(int64_t)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(send, host.data(), count * sizeof(int64_t), cudaMemcpyHostToDevice),
            cudaSuccess);
  const int next = (r + 1) % p, prev = (r + p - 1) % p;
  const P2POp ops[] = {P2POp::send(next, send, count * sizeof(int64_t)),
                       P2POp::recv(prev, recv, count * sizeof(int64_t))};
  SEQPAR_EXPECT_OK(comm->exchange(ops));
  ASSERT_EQ(cudaMemcpy(host.data(), recv, count * sizeof(int64_t), cudaMemcpyDeviceToHost),
            cudaSuccess);
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(host[i], prev * 100000 + static_cast<int64_t>(i));

  // In-place sum, ordered on a compute stream.
  cudaStream_t consumer = nullptr;
  ASSERT_EQ(cudaStreamCreate(&consumer), cudaSuccess);
  SEQPAR_EXPECT_OK(comm->set_stream(consumer));
  SEQPAR_EXPECT_OK(comm->all_reduce(send, send, count, DType::kI64, ReduceOp::kSum));
  ASSERT_EQ(
      cudaMemcpyAsync(host.data(), send, count * sizeof(int64_t), cudaMemcpyDeviceToHost, consumer),
      cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(consumer), cudaSuccess);
  const int64_t rank_sum = 100000LL * p * (p - 1) / 2;
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(host[i], rank_sum + p * static_cast<int64_t>(i));

  auto child = comm->split(r % 2, r);
  ASSERT_TRUE(child.is_ok()) << child.status().to_string();
  EXPECT_EQ(child.value()->stream(), comm->stream());
  SEQPAR_EXPECT_OK(child.value()->barrier());
  SEQPAR_EXPECT_OK(comm->barrier());
  cudaFree(send);
  cudaFree(recv);
  cudaStreamDestroy(consumer);
}

TEST(comm_nccl, SharedChecksOnAComputeStream) {
  std::unique_ptr<Communicator> comm = nccl_or_skip();
  if (comm == nullptr) GTEST_SKIP() << "needs one GPU per rank";
  cudaStream_t compute = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), cudaSuccess);
  SEQPAR_EXPECT_OK(comm->set_stream(compute));
  for (Status (*check)(Communicator&) :
       {check_exchange_ring, check_all_to_all_equal, check_all_to_all_uneven, check_all_gather,
        check_reduce_scatter, check_all_reduce, check_broadcast, check_barrier, check_split,
        check_nonblocking, check_stats}) {
    SEQPAR_EXPECT_OK(check(*comm));
  }
  ASSERT_EQ(cudaStreamSynchronize(compute), cudaSuccess);
  cudaStreamDestroy(compute);
}

}  // namespace
}  // namespace seqpar::testing
