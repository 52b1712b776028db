// HostBuffer: aligned host allocation.
#include "core/host_buffer.hpp"

#include <cstdlib>
#include <cstring>
#include <utility>

namespace seqpar {

HostBuffer::~HostBuffer() { release(); }

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Status HostBuffer::allocate(size_t bytes) {
  release();
  if (bytes == 0) return Status::ok();
  constexpr size_t kAlign = 64;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  data_ = std::aligned_alloc(kAlign, rounded);
  SEQPAR_REQUIRE(data_ != nullptr, StatusCode::kOutOfMemory, "host allocation of ", bytes,
                 " bytes failed");
  bytes_ = bytes;
  return Status::ok();
}

void HostBuffer::release() {
  std::free(data_);
  data_ = nullptr;
  bytes_ = 0;
}

void HostBuffer::fill_zero() {
  if (data_ != nullptr) std::memset(data_, 0, bytes_);
}

}  // namespace seqpar
