#pragma once
// Counting of the calling thread's C++ heap allocations, for tests that assert a loop allocates
// nothing. Linking counting_new.cpp into a test binary replaces global operator new (every
// form) for the whole binary; only calls made while the thread counts are counted, and, in the
// emulated GPU build, not those the emulated CUDA runtime makes for itself.
#include <cstdint>

namespace seqpar::testing {

void start_counting_allocations();
// Stops counting and returns the allocations since start_counting_allocations().
int64_t stop_counting_allocations();

}  // namespace seqpar::testing
