#pragma once
// WorkspaceArena: a scheme's workspace as one allocation carved into 64-byte aligned regions.
// Each add() reserves a region and computes its offset once; allocate() makes the arena and
// points every registered pointer at its region. Used at plan creation only (never in a step).
//
//   WorkspaceArena arena;
//   arena.add(acc_q_, q_elems * sizeof(float));  // float* acc_q_: (B, S_local, Hq, D) fp32
//   arena.add(kv_recv_[0], ring ? 2 * kv_bytes : 0);  // empty regions cost nothing
//   SEQPAR_RETURN_IF_ERROR(arena.allocate(workspace_));
#include <array>
#include <cstddef>

#include "core/host_buffer.hpp"
#include "core/status.hpp"

namespace seqpar {

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

  // Allocates bytes() into `buffer` and sets every registered pointer.
  Status allocate(HostBuffer& buffer) const {
    SEQPAR_REQUIRE(!overflow_, StatusCode::kInternal, "a workspace arena holds at most ",
                   kMaxRegions, " regions");
    SEQPAR_RETURN_IF_ERROR(buffer.allocate(offset_));
    char* base = buffer.as<char>();
    for (size_t i = 0; i < count_; ++i)
      regions_[i].set(regions_[i].slot, base + regions_[i].offset);
    return Status::ok();
  }

 private:
  struct Region {
    void* slot = nullptr;  // the T* to set, as T**
    size_t offset = 0;
    void (*set)(void* slot, char* at) = nullptr;
  };
  std::array<Region, kMaxRegions> regions_{};
  size_t count_ = 0;
  size_t offset_ = 0;
  bool overflow_ = false;
};

}  // namespace seqpar
