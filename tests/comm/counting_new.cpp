// Replacement global operator new/delete (plain, array and aligned forms, on malloc/free) that
// count the allocations of the calling thread while it counts (counting_new.hpp). The nothrow
// forms of libstdc++ call these, so they are counted too. Only C++ allocations are seen: C code
// such as Open MPI's allocates with malloc, which is not replaced.
#include "counting_new.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>

#ifdef SEQPAR_CUDA_EMULATION
#include "cuda_emu/device.hpp"
#endif

namespace seqpar::testing {
namespace {

thread_local bool t_counting = false;
thread_local int64_t t_allocations = 0;

void* allocate(std::size_t bytes, std::size_t alignment) {
#ifdef SEQPAR_CUDA_EMULATION
  // The emulated CUDA runtime's own allocations are not the caller's (cuda_emu/device.hpp).
  if (t_counting && !cuda_emu::in_emulated_runtime()) ++t_allocations;
#else
  if (t_counting) ++t_allocations;
#endif
  if (bytes == 0) bytes = 1;
  void* p = nullptr;
  if (alignment <= alignof(std::max_align_t)) {
    p = std::malloc(bytes);
  } else {
    p = std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void start_counting_allocations() {
  t_allocations = 0;
  t_counting = true;
}

int64_t stop_counting_allocations() {
  t_counting = false;
  return t_allocations;
}

}  // namespace seqpar::testing

using seqpar::testing::allocate;

// The replacements pair malloc with free themselves; GCC cannot see that through operator new.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t bytes) { return allocate(bytes, 0); }
void* operator new[](std::size_t bytes) { return allocate(bytes, 0); }
void* operator new(std::size_t bytes, std::align_val_t alignment) {
  return allocate(bytes, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  return allocate(bytes, static_cast<std::size_t>(alignment));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
