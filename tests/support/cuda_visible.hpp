#pragma once
// Whether the device tests can run here: a visible CUDA device (in the emulated build, the
// emulator's), never in a build without the CUDA toolkit; and the skip they take without one.
// Only the CUDA runtime's header: tests of the public API include it beside seqpar.hpp.
#include <gtest/gtest.h>

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace seqpar_test_support {

inline bool cuda_device_visible() {
#ifdef SEQPAR_HAVE_CUDA
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

}  // namespace seqpar_test_support

// Skips the current test (from a TEST body or a fixture's SetUp) without a visible device.
#define SEQPAR_SKIP_WITHOUT_CUDA_DEVICE()            \
  if (!::seqpar_test_support::cuda_device_visible()) \
  GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none; nor the emulator)"
