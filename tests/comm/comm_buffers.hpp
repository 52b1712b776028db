#pragma once
// CommBuffers: a check's buffers in the memory its communicator moves. A check fills and reads
// host vectors; place() gives the pointer an op takes: the vector itself for a host-memory
// communicator, a device copy of it for a device-memory one (uploaded on the communicator's
// stream, Communicator::stream()). push() uploads the vectors again, fetch() downloads every
// device copy back into its vector and waits for the stream: the only host synchronisation of a
// device check, and the test's, never the communicator's. On host memory push() and fetch() do
// nothing. The vectors must outlive the CommBuffers and keep their size.
#include <cstddef>
#include <vector>

#include "comm/communicator.hpp"

namespace seqpar::testing {

class CommBuffers {
 public:
  explicit CommBuffers(const Communicator& comm);
  ~CommBuffers();  // frees the device copies
  CommBuffers(const CommBuffers&) = delete;
  CommBuffers& operator=(const CommBuffers&) = delete;

  template <class T>
  T* place(std::vector<T>& host) {
    return static_cast<T*>(place_bytes(host.data(), host.size() * sizeof(T)));
  }
  template <class T>
  T* place(T& value) {
    return static_cast<T*>(place_bytes(&value, sizeof(T)));
  }

  Status status() const { return status_; }  // the first failed placement or upload
  Status push();
  Status fetch();

 private:
  struct Mirror {
    void* host;
    void* device;
    size_t bytes;
  };
  void* place_bytes(void* host, size_t bytes);

  const Communicator& comm_;
  std::vector<Mirror> mirrors_;
  Status status_;
};

}  // namespace seqpar::testing
