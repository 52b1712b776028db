#pragma once
// The CUDA side of runtime/buffer_ops.hpp: one strided-run kernel that copies, converts or sums
// B x rows runs of `run` elements between two (B, rows, cols, inner) grids (a flat array is one
// run). Plain C++ declarations; the kernel is in buffer_ops.cu. CUDA builds only.
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.hpp"

namespace seqpar::cuda_buffer_ops {

// Element (b, r, i) of the rectangle is src[src_base + b * src_batch_stride + r * src_row_stride
// + i] and dst[dst_base + ...] (strides and bases in elements of each side's dtype).
struct StridedRuns {
  const void* src = nullptr;
  DType src_dtype = DType::kF32;
  void* dst = nullptr;
  DType dst_dtype = DType::kF32;
  int64_t batch = 0, rows = 0, run = 0;
  int64_t src_base = 0, src_row_stride = 0, src_batch_stride = 0;
  int64_t dst_base = 0, dst_row_stride = 0, dst_batch_stride = 0;
  bool add = false;  // dst (fp32) += src; otherwise dst = src (converted when the dtypes differ)
};

// Enqueues the kernel on `stream` (nothing when the rectangle is empty); the launch's error.
cudaError_t launch_strided_runs(const StridedRuns& p, cudaStream_t stream);

}  // namespace seqpar::cuda_buffer_ops
#endif
