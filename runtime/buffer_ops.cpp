// buffer_ops: host targets call the host functions the schemes used before (std::memset,
// std::memcpy, core/dtype.hpp and runtime/grid_copy.hpp); CUDA targets enqueue on the target's
// stream (runtime/cuda/buffer_ops.cu) and are refused with kUnsupported without the toolkit.
#include "runtime/buffer_ops.hpp"

#include <cstring>

#ifdef SEQPAR_HAVE_CUDA
#include "core/cuda_check.hpp"
#include "runtime/cuda/buffer_ops_launch.hpp"
#endif

namespace seqpar::buffer_ops {
namespace {

Status check_storage(DType dtype, const char* op) {
  SEQPAR_REQUIRE(is_storage_dtype(dtype), StatusCode::kInvalidArgument, op,
                 ": buffers are fp32, bf16 or fp16, got ", dtype_name(dtype));
  return Status::ok();
}

Status check_rect(const ConstGrid& src, const MutableGrid& dst, bool add, const char* op) {
  SEQPAR_RETURN_IF_ERROR(check_storage(src.dtype, op));
  SEQPAR_RETURN_IF_ERROR(check_storage(dst.dtype, op));
  if (add) {
    SEQPAR_REQUIRE(dst.dtype == DType::kF32, StatusCode::kInvalidArgument, op,
                   ": sums are fp32, got a ", dtype_name(dst.dtype), " destination");
  } else {
    SEQPAR_REQUIRE(src.dtype == dst.dtype || src.dtype == DType::kF32 || dst.dtype == DType::kF32,
                   StatusCode::kInvalidArgument, op, ": ", dtype_name(src.dtype), " -> ",
                   dtype_name(dst.dtype), " (a copy converts only to or from fp32)");
  }
  SEQPAR_REQUIRE(src.shape.batch == dst.shape.batch && src.shape.inner == dst.shape.inner,
                 StatusCode::kInvalidArgument, op, ": grids of batch ", src.shape.batch, " and ",
                 dst.shape.batch, ", inner ", src.shape.inner, " and ", dst.shape.inner,
                 " (they must agree)");
  return Status::ok();
}

#ifdef SEQPAR_HAVE_CUDA
cudaStream_t stream_of(const KernelTarget& target) {
  return static_cast<cudaStream_t>(target.stream);
}

// A flat array of n values as one run.
cuda_buffer_ops::StridedRuns flat_runs(const void* src, DType src_dtype, void* dst, DType dst_dtype,
                                       size_t n, bool add) {
  cuda_buffer_ops::StridedRuns p;
  p.src = src;
  p.src_dtype = src_dtype;
  p.dst = dst;
  p.dst_dtype = dst_dtype;
  p.batch = 1;
  p.rows = 1;
  p.run = static_cast<int64_t>(n);
  p.add = add;
  return p;
}

// The rectangle's (b, row) runs of cols * inner elements (see runtime/grid_copy.hpp).
cuda_buffer_ops::StridedRuns rect_runs(const ConstGrid& src, GridCorner from,
                                       const MutableGrid& dst, GridCorner to, int64_t rows,
                                       int64_t cols, bool add) {
  const int64_t inner = src.shape.inner;
  cuda_buffer_ops::StridedRuns p;
  p.src = src.data;
  p.src_dtype = src.dtype;
  p.dst = dst.data;
  p.dst_dtype = dst.dtype;
  p.batch = src.shape.batch;
  p.rows = rows;
  p.run = cols * inner;
  p.src_row_stride = src.shape.cols * inner;
  p.src_batch_stride = src.shape.rows * p.src_row_stride;
  p.src_base = (from.row * src.shape.cols + from.col) * inner;
  p.dst_row_stride = dst.shape.cols * inner;
  p.dst_batch_stride = dst.shape.rows * p.dst_row_stride;
  p.dst_base = (to.row * dst.shape.cols + to.col) * inner;
  p.add = add;
  return p;
}

Status launch(const cuda_buffer_ops::StridedRuns& p, const KernelTarget& target) {
  SEQPAR_CUDA_CHECK(cuda_buffer_ops::launch_strided_runs(p, stream_of(target)));
  return Status::ok();
}
#else
Status cuda_not_built(const char* op) {
  return SEQPAR_FAIL(StatusCode::kUnsupported, "buffer_ops::", op,
                     " on a CUDA target: this build has no CUDA toolkit (use a host target)");
}
#endif

}  // namespace

Status zero(void* data, size_t bytes, const KernelTarget& target) {
  if (target.device == Device::kHost) {
    if (bytes > 0) std::memset(data, 0, bytes);  // data may be null when bytes is 0
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  if (bytes > 0) SEQPAR_CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, stream_of(target)));
  return Status::ok();
#else
  return cuda_not_built("zero");
#endif
}

Status copy(void* dst, const void* src, size_t bytes, const KernelTarget& target) {
  if (target.device == Device::kHost) {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  if (bytes > 0) {
    SEQPAR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(target)));
  }
  return Status::ok();
#else
  return cuda_not_built("copy");
#endif
}

Status convert_from_float(const float* src, void* dst, DType dst_dtype, size_t n,
                          const KernelTarget& target) {
  SEQPAR_RETURN_IF_ERROR(check_storage(dst_dtype, "convert_from_float"));
  if (target.device == Device::kHost) {
    seqpar::convert_from_float(src, dst, dst_dtype, n);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  if (dst_dtype == DType::kF32) return copy(dst, src, n * sizeof(float), target);
  return launch(flat_runs(src, DType::kF32, dst, dst_dtype, n, false), target);
#else
  return cuda_not_built("convert_from_float");
#endif
}

Status add_to_float(float* total, const void* share, DType share_dtype, size_t n,
                    const KernelTarget& target) {
  SEQPAR_RETURN_IF_ERROR(check_storage(share_dtype, "add_to_float"));
  if (target.device == Device::kHost) {
    seqpar::add_to_float(total, share, share_dtype, n);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return launch(flat_runs(share, share_dtype, total, DType::kF32, n, true), target);
#else
  return cuda_not_built("add_to_float");
#endif
}

Status copy_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                      int64_t rows, int64_t cols, const KernelTarget& target) {
  SEQPAR_RETURN_IF_ERROR(check_rect(src, dst, false, "copy_grid_rect"));
  if (target.device == Device::kHost) {
    seqpar::copy_grid_rect(src, from, dst, to, rows, cols);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return launch(rect_runs(src, from, dst, to, rows, cols, false), target);
#else
  return cuda_not_built("copy_grid_rect");
#endif
}

Status add_grid_rect(const ConstGrid& src, GridCorner from, const MutableGrid& dst, GridCorner to,
                     int64_t rows, int64_t cols, const KernelTarget& target) {
  SEQPAR_RETURN_IF_ERROR(check_rect(src, dst, true, "add_grid_rect"));
  if (target.device == Device::kHost) {
    seqpar::add_grid_rect(src, from, dst, to, rows, cols);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return launch(rect_runs(src, from, dst, to, rows, cols, true), target);
#else
  return cuda_not_built("add_grid_rect");
#endif
}

}  // namespace seqpar::buffer_ops
