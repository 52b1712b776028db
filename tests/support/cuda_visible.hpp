#pragma once
// Whether the device tests can run here: a visible CUDA device (in the emulated build, the
// emulator's), never in a build without the CUDA toolkit; and the skip they take without one.
#include <gtest/gtest.h>

#ifdef SEQPAR_HAVE_CUDA
#include "core/device_buffer.hpp"
#endif

namespace seqpar::testing {

inline bool cuda_device_visible() {
#ifdef SEQPAR_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

}  // namespace seqpar::testing

// Skips the current test (from a TEST body or a fixture's SetUp) without a visible device.
#define SEQPAR_SKIP_WITHOUT_CUDA_DEVICE()        \
  if (!::seqpar::testing::cuda_device_visible()) \
  GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none; nor the emulator)"
