#pragma once
// HostBuffer: an owning, 64-byte aligned, move-only block of host memory. Allocation is the only
// fallible step and returns a Status (out of memory is an error, not a crash).
#include <cstddef>

#include "core/status.hpp"

namespace seqpar {

class HostBuffer {
 public:
  HostBuffer() = default;
  ~HostBuffer();
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  // Allocates `bytes` (contents undefined); frees what was held before.
  Status allocate(size_t bytes);
  void release();
  void fill_zero();

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <class T>
  T* as() {
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* as() const {
    return static_cast<const T*>(data_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace seqpar
