#pragma once
// The device side of the finite check (runtime/finite_check.hpp's DeviceFiniteCheck): a count of
// the NaN and Inf elements of a device buffer, with the smallest index of one, added into a
// small device record; and the latch that keeps the first step whose records found any. Plain
// C++ declarations; the kernels are in finite_check.cu. CUDA builds only.
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.hpp"

namespace seqpar::cuda_finite_check {

// The tensors a step checks, one record each (Q, K, V, dO, dQ, dK, dV).
inline constexpr int kMaxChecked = 8;

// One step's records, tensor by tensor. Before the counts: count 0, first all ones (the
// memsets of DeviceFiniteCheck; nothing found leaves them so).
struct StepRecords {
  unsigned long long count[kMaxChecked];  // non-finite elements found
  unsigned long long first[kMaxChecked];  // the smallest index of one (all ones: none)
};

// The first step whose records found a non-finite element, latched on the device (all zero
// until then): the host reads it from a pinned copy, so a report it has not read yet is never
// overwritten by a later, clean step.
struct Report {
  unsigned long long step;  // the plan's step (1-based); 0: every step so far was clean
  unsigned long long pass;  // what the caller tags the step with (forward, backward)
  StepRecords records;
};

// Adds to *count the number of the `n` elements of `data` (bf16, fp16 or fp32) that are NaN or
// Inf, and lowers *first to the smallest index of one (untouched when there is none).
struct CountArgs {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t n = 0;
  unsigned long long* count = nullptr;
  unsigned long long* first = nullptr;
};
cudaError_t launch_count_non_finite(const CountArgs& args, cudaStream_t stream);

// When *report is clean (step 0) and any of the `checked` first records of *records counts a
// non-finite element: *report = {step, pass, *records}. One thread.
struct LatchArgs {
  const StepRecords* records = nullptr;
  Report* report = nullptr;
  int checked = 0;
  unsigned long long step = 0;
  unsigned long long pass = 0;
};
cudaError_t launch_latch_first_failure(const LatchArgs& args, cudaStream_t stream);

}  // namespace seqpar::cuda_finite_check
#endif
