#pragma once
// Small host-side collectives for the launcher's set-up work (topology discovery, link
// measurement) on any backend: with a device-memory backend (nccl) the bytes are staged through
// a device buffer and the device is synchronised before the host reads them. Not for step loops.
#include <cstddef>

#include "comm/communicator.hpp"
#include "core/status.hpp"

namespace seqpar {

// recv (size() * bytes, host) gets every rank's `bytes` from send (host), in rank order.
Status all_gather_host(Communicator& comm, const void* send, void* recv, size_t bytes);
// `bytes` of buffer (host) from root to every rank.
Status broadcast_host(Communicator& comm, void* buffer, size_t bytes, int root);

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
