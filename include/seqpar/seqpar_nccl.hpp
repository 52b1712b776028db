#pragma once
// Adopting an NCCL communicator (device memory; only for programs built with CUDA and NCCL).
// Needs a libseqpar built with NCCL (else kUnsupported).
// ```cpp
// #include <seqpar/seqpar_nccl.hpp>
//
// seqpar::Status adopt(ncclComm_t nccl, cudaStream_t stream, seqpar::Communicator& out) {
//   auto comm = seqpar::make_nccl_communicator(nccl, stream);
//   if (!comm.is_ok()) return comm.status();
//   out = std::move(comm).value();
//   return seqpar::Status::ok();
// }
// ```
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "seqpar/seqpar.hpp"

namespace seqpar {
inline namespace v0 {

// Adopts the caller's communicator and stream; neither is destroyed by the result, and both must
// outlive it. The caller's current CUDA device must be the communicator's. A device plan on it
// takes device pointers and its own stream in PlanConfig::stream.
inline StatusOr<Communicator> make_nccl_communicator(ncclComm_t comm, cudaStream_t stream) {
  seqpar_comm* handle = nullptr;
  Status status = detail::from_c(
      seqpar_comm_from_nccl(static_cast<void*>(comm), static_cast<void*>(stream), &handle));
  if (!status.is_ok()) return status;
  return Communicator::adopt(handle);
}

}  // namespace v0
}  // namespace seqpar
