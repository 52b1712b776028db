#pragma once
// WorkspaceBuffer: one workspace allocation where the plan's device says (host memory for
// Device::kHost, a cudaMalloc'd DeviceBuffer for Device::kCuda), and WorkspaceArena: a scheme's
// workspace as one such allocation carved into 64-byte aligned regions. Each add() reserves a
// region and computes its offset once; allocate() makes the arena and points every registered
// pointer at its region. Used at plan creation only (never in a step).
//
//   WorkspaceArena arena;
//   arena.add(acc_q_, q_elems * sizeof(float));  // float* acc_q_: (B, S_local, Hq, D) fp32
//   arena.add(kv_recv_[0], ring ? 2 * kv_bytes : 0);  // empty regions cost nothing
//   SEQPAR_RETURN_IF_ERROR(arena.allocate(workspace_, ctx_.device));
#include <array>
#include <cstddef>

#include "core/host_buffer.hpp"
#include "core/status.hpp"
#include "core/tensor.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include "core/device_buffer.hpp"
#endif

namespace seqpar {

// Owning, move-only workspace memory on one device. Its contents are undefined after allocate()
// (zero them with runtime/buffer_ops.hpp on the same device).
class WorkspaceBuffer {
 public:
  // Allocates `bytes` on `device`; frees what was held before. kUnsupported for Device::kCuda in
  // a build without the CUDA toolkit.
  Status allocate(size_t bytes, Device device) {
    host_.release();
#ifdef SEQPAR_HAVE_CUDA
    device_buffer_.release();
#endif
    device_ = device;
    if (device == Device::kHost) return host_.allocate(bytes);
#ifdef SEQPAR_HAVE_CUDA
    return device_buffer_.allocate(bytes);
#else
    return SEQPAR_FAIL(StatusCode::kUnsupported, "a workspace of ", bytes, " bytes on ",
                       device_name(device),
                       " memory: this build has no CUDA toolkit (use host memory)");
#endif
  }

  void* data() {
#ifdef SEQPAR_HAVE_CUDA
    if (device_ == Device::kCuda) return device_buffer_.data();
#endif
    return host_.data();
  }
  size_t bytes() const {
#ifdef SEQPAR_HAVE_CUDA
    if (device_ == Device::kCuda) return device_buffer_.bytes();
#endif
    return host_.bytes();
  }
  Device device() const { return device_; }

 private:
  Device device_ = Device::kHost;
  HostBuffer host_;
#ifdef SEQPAR_HAVE_CUDA
  DeviceBuffer device_buffer_;
#endif
};

class WorkspaceArena {
 public:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kMaxRegions = 32;

  static size_t align_up(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  // Reserves `bytes` for `*pointer`, which allocate() sets to the region's start.
  template <class T>
  void add(T*& pointer, size_t bytes) {
    if (count_ == kMaxRegions) {
      overflow_ = true;
      return;
    }
    regions_[count_++] = {&pointer, offset_, [](void* slot, char* at) {
                            *static_cast<T**>(slot) = static_cast<T*>(static_cast<void*>(at));
                          }};
    offset_ += align_up(bytes);
  }

  size_t bytes() const { return offset_; }  // the whole arena

  // Allocates bytes() into host `buffer` and sets every registered pointer.
  Status allocate(HostBuffer& buffer) const {
    SEQPAR_RETURN_IF_ERROR(check_regions());
    SEQPAR_RETURN_IF_ERROR(buffer.allocate(offset_));
    carve(buffer.as<char>());
    return Status::ok();
  }

  // Allocates bytes() into `buffer` on `device` and sets every registered pointer (device
  // pointers for Device::kCuda).
  Status allocate(WorkspaceBuffer& buffer, Device device) const {
    SEQPAR_RETURN_IF_ERROR(check_regions());
    SEQPAR_RETURN_IF_ERROR(buffer.allocate(offset_, device));
    carve(static_cast<char*>(buffer.data()));
    return Status::ok();
  }

 private:
  struct Region {
    void* slot = nullptr;  // the T* to set, as T**
    size_t offset = 0;
    void (*set)(void* slot, char* at) = nullptr;
  };

  Status check_regions() const {
    SEQPAR_REQUIRE(!overflow_, StatusCode::kInternal, "a workspace arena holds at most ",
                   kMaxRegions, " regions");
    return Status::ok();
  }
  void carve(char* base) const {
    for (size_t i = 0; i < count_; ++i)
      regions_[i].set(regions_[i].slot, base + regions_[i].offset);
  }

  std::array<Region, kMaxRegions> regions_{};
  size_t count_ = 0;
  size_t offset_ = 0;
  bool overflow_ = false;
};

// The bytes of an arena carved by Buffers::add_to(arena, args...): a descriptor's workspace
// query runs the very code that carves the plan's arena, without allocating.
template <class Buffers, class... Args>
size_t arena_bytes(const Args&... args) {
  WorkspaceArena arena;
  Buffers unused;
  unused.add_to(arena, args...);
  return arena.bytes();
}

}  // namespace seqpar
