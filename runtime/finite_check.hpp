#pragma once
// The plan's finite check (PlanConfig::check_finite): a rank's inputs and gradients scanned for
// NaN and Inf, one pass over the shards, small next to the attention work. Inputs are scanned,
// not outputs, because a NaN input need not reach the outputs as NaN (a fast exp can turn it
// into a finite wrong value). Host memory only (a device plan would need a device reduction).
#include <cstddef>

#include "core/dtype.hpp"
#include "core/status.hpp"

namespace seqpar {

// kInvalidArgument naming `what`, the first non-finite element and how many there are, when any
// of the `n` values of `data` (in `dtype`) is NaN or Inf.
Status require_finite(const void* data, DType dtype, size_t n, const char* what);

}  // namespace seqpar
