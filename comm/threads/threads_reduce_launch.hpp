#pragma once
// The launch of the threads backend's device reduction (threads_reduce.cu): the arguments of one
// rank-order reduction and the call that enqueues it. Plain C++ declarations; CUDA builds only.
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.hpp"

namespace seqpar::threads_device {

inline constexpr int kReduceInputCapacity = 64;  // threads_device.hpp's kMaxReduceRanks

// dst[i] = inputs[0][first + i] (+ or max) inputs[1][first + i] ... for i in [0, count).
struct ReduceInOrder {
  const void* inputs[kReduceInputCapacity] = {};  // device buffers, combined in this order
  int input_count = 0;
  int64_t first = 0;  // elements skipped at the start of every input
  int64_t count = 0;
  void* dst = nullptr;  // `count` elements of `dtype`
  DType dtype = DType::kF32;
  bool take_max = false;  // else sum
};

// Enqueues the kernel on `stream` (nothing when count is 0); the launch's error.
cudaError_t launch_reduce_in_order(const ReduceInOrder& p, cudaStream_t stream);

}  // namespace seqpar::threads_device
#endif
