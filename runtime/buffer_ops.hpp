#pragma once
// buffer_ops: the schemes' elementwise work on a KernelTarget (host, or a CUDA device + stream):
// zeroing and copying bytes, fp32 <-> storage dtype conversion, fp32 sums of shares, and the
// rectangle copies and sums of runtime/grid_copy.hpp. Host targets run today's host functions
// (std::memset, std::memcpy, convert_from_float, add_to_float, copy_grid_rect, add_grid_rect);
// CUDA targets enqueue cudaMemsetAsync / cudaMemcpyAsync or a small kernel on the target's
// stream, check every launch, and never synchronise the host. Pointers are in the target's
// memory. In builds without the CUDA toolkit a CUDA target is refused with kUnsupported.
//
//   const KernelTarget target{ctx_.device, ctx_.stream};
//   SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(acc_q_, q_elems * sizeof(float), target));
//   SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(acc_q_, args.out, dtype, q_elems,
//   target));
#include <cstddef>
#include <cstdint>

#include "attention/dispatch.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "runtime/grid_copy.hpp"

namespace seqpar::buffer_ops {

// data[0, bytes) = 0.
Status zero(void* data, size_t bytes, const KernelTarget& target);

// dst[0, bytes) = src[0, bytes); the ranges do not overlap. On a CUDA target src may also be
// host memory (an upload, asynchronous on the target's stream: src must outlive the copy).
Status copy(void* dst, const void* src, size_t bytes, const KernelTarget& target);

// dst[i] = src[i] rounded to `dst_dtype` (fp32, bf16 or fp16) for n values.
Status convert_from_float(const float* src, void* dst, DType dst_dtype, size_t n,
                          const KernelTarget& target);

// total[i] += share[i] for n values, the share in any storage dtype; sums stay in fp32.
Status add_to_float(float* total, const void* share, DType share_dtype, size_t n,
                    const KernelTarget& target);

// dst[to + (r, c)] = src[from + (r, c)] for a rows x cols rectangle of (B, rows, cols, inner)
// grids (runtime/grid_copy.hpp): same dtypes, or one of them fp32.
Status copy_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                      int64_t rows, int64_t cols, const KernelTarget& target);

// dst[to + (r, c)] += src[from + (r, c)], summed in fp32: dst must be fp32.
Status add_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                     int64_t rows, int64_t cols, const KernelTarget& target);

}  // namespace seqpar::buffer_ops
