// Host-side collectives staged through device memory for device backends (comm/comm_staging.hpp).
#include "comm/comm_staging.hpp"

#include <cstdlib>
#include <cstring>

#ifdef SEQPAR_HAVE_CUDA
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#endif

namespace seqpar {
namespace {

#ifdef SEQPAR_HAVE_CUDA
// A staged collective's result is ordered on the communicator's stream (comm/communicator.hpp):
// the host waits for that stream before reading it. The upload before it is a synchronous
// cudaMemcpy, done before the collective is posted.
Status wait_for_stream(const Communicator& comm) {
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(comm.stream())));
  return Status::ok();
}
#endif

}  // namespace

CommScratch::~CommScratch() {
#ifdef SEQPAR_HAVE_CUDA
  if (device_ && data_ != nullptr) cudaFree(data_);
#endif
  if (!device_) std::free(data_);
}

Status CommScratch::allocate(const Communicator& comm, size_t bytes) {
  SEQPAR_REQUIRE(data_ == nullptr, StatusCode::kInternal, "CommScratch allocated twice");
  device_ = comm.device_memory();
  if (device_) {
#ifdef SEQPAR_HAVE_CUDA
    SEQPAR_CUDA_CHECK(cudaMalloc(&data_, bytes == 0 ? 1 : bytes));
    SEQPAR_CUDA_CHECK(cudaMemset(data_, 0, bytes));
    return Status::ok();
#else
    return SEQPAR_FAIL(StatusCode::kUnsupported, "device-memory backend in a build without CUDA");
#endif
  }
  data_ = std::calloc(bytes == 0 ? 1 : bytes, 1);
  SEQPAR_REQUIRE(data_ != nullptr, StatusCode::kOutOfMemory, "cannot allocate ", bytes,
                 " bytes for a message buffer");
  return Status::ok();
}

Status CommScratch::sync(const Communicator& comm) {
#ifdef SEQPAR_HAVE_CUDA
  if (comm.device_memory()) SEQPAR_CUDA_CHECK(cudaDeviceSynchronize());
#else
  (void)comm;
#endif
  return Status::ok();
}

Status all_gather_host(Communicator& comm, const void* send, void* recv, size_t bytes) {
  if (!comm.device_memory()) return comm.all_gather(send, recv, bytes);
#ifdef SEQPAR_HAVE_CUDA
  const size_t total = bytes * static_cast<size_t>(comm.size());
  DeviceBuffer in, out;
  SEQPAR_RETURN_IF_ERROR(in.allocate(bytes));
  SEQPAR_RETURN_IF_ERROR(out.allocate(total));
  SEQPAR_CUDA_CHECK(cudaMemcpy(in.data(), send, bytes, cudaMemcpyHostToDevice));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(in.data(), out.data(), bytes));
  SEQPAR_RETURN_IF_ERROR(wait_for_stream(comm));
  SEQPAR_CUDA_CHECK(cudaMemcpy(recv, out.data(), total, cudaMemcpyDeviceToHost));
  return Status::ok();
#else
  (void)send;
  (void)recv;
  return SEQPAR_FAIL(StatusCode::kUnsupported, "device-memory backend in a build without CUDA");
#endif
}

Status broadcast_host(Communicator& comm, void* buffer, size_t bytes, int root) {
  if (!comm.device_memory()) return comm.broadcast(buffer, bytes, root);
#ifdef SEQPAR_HAVE_CUDA
  DeviceBuffer staged;
  SEQPAR_RETURN_IF_ERROR(staged.allocate(bytes));
  SEQPAR_CUDA_CHECK(cudaMemcpy(staged.data(), buffer, bytes, cudaMemcpyHostToDevice));
  SEQPAR_RETURN_IF_ERROR(comm.broadcast(staged.data(), bytes, root));
  SEQPAR_RETURN_IF_ERROR(wait_for_stream(comm));
  SEQPAR_CUDA_CHECK(cudaMemcpy(buffer, staged.data(), bytes, cudaMemcpyDeviceToHost));
  return Status::ok();
#else
  (void)buffer;
  (void)root;
  return SEQPAR_FAIL(StatusCode::kUnsupported, "device-memory backend in a build without CUDA");
#endif
}

Status all_reduce_host(Communicator& comm, void* data, size_t count, DType dtype, ReduceOp op) {
  if (!comm.device_memory()) return comm.all_reduce(data, data, count, dtype, op);
#ifdef SEQPAR_HAVE_CUDA
  const size_t bytes = count * dtype_size(dtype);
  DeviceBuffer staged;
  SEQPAR_RETURN_IF_ERROR(staged.allocate(bytes));
  SEQPAR_CUDA_CHECK(cudaMemcpy(staged.data(), data, bytes, cudaMemcpyHostToDevice));
  SEQPAR_RETURN_IF_ERROR(comm.all_reduce(staged.data(), staged.data(), count, dtype, op));
  SEQPAR_RETURN_IF_ERROR(wait_for_stream(comm));
  SEQPAR_CUDA_CHECK(cudaMemcpy(data, staged.data(), bytes, cudaMemcpyDeviceToHost));
  return Status::ok();
#else
  (void)data, (void)count, (void)dtype, (void)op;
  return SEQPAR_FAIL(StatusCode::kUnsupported, "device-memory backend in a build without CUDA");
#endif
}

}  // namespace seqpar
