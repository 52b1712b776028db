#pragma once
// Small host-side collectives for set-up and bookkeeping work (plan agreement, topology
// discovery, link measurement, the harness's step figures and reference check) on any backend:
// with a device-memory backend (nccl, threads on a device) the bytes are staged through a device
// buffer and the communicator's stream is waited for before the host reads them. They allocate
// and synchronise: not for step loops.
#include <cstddef>

#include "comm/communicator.hpp"
#include "core/status.hpp"

namespace seqpar {

// recv (size() * bytes, host) gets every rank's `bytes` from send (host), in rank order.
Status all_gather_host(Communicator& comm, const void* send, void* recv, size_t bytes);
// `bytes` of buffer (host) from root to every rank.
Status broadcast_host(Communicator& comm, void* buffer, size_t bytes, int root);
// data (host, `count` values of `dtype`) = the reduction over ranks, in place.
Status all_reduce_host(Communicator& comm, void* data, size_t count, DType dtype, ReduceOp op);

// A message buffer in the memory the backend works on (host, or device for nccl), for timing
// transfers. sync() waits for the backend's work on the device (no-op on the host).
class CommScratch {
 public:
  CommScratch() = default;
  ~CommScratch();
  CommScratch(const CommScratch&) = delete;
  CommScratch& operator=(const CommScratch&) = delete;
  Status allocate(const Communicator& comm, size_t bytes);
  void* data() { return data_; }
  static Status sync(const Communicator& comm);

 private:
  void* data_ = nullptr;
  bool device_ = false;
};

}  // namespace seqpar
