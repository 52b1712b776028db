// cuda_block_forward / cuda_block_backward / cuda_attention_delta / cuda_merge_partials: check
// what the CUDA kernels support (the params themselves were validated at the API boundary),
// turn the block params into each kernel family's params and launch on the caller's stream.
#include "attention/cuda/cuda_launchers.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "attention/cuda/kernel_params.hpp"
#include "core/cuda_check.hpp"
#include "core/listing.hpp"

namespace seqpar {

namespace {

using cuda_attention::BackwardKernelParams;
using cuda_attention::ForwardKernelParams;
using cuda_attention::KernelShape;
using cuda_attention::RowwiseKernelParams;

constexpr float kLog2e = 1.4426950408889634f;
constexpr int64_t kMaxGridYZ = 65535;  // gridDim.y / gridDim.z limit (heads, batch)
constexpr int64_t kMaxGridX = 2147483647;

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// cuda_kernels_support, the message prefixed with the op.
Status check_supported(const char* op, DType dtype, int64_t head_dim) {
  const Status supported = cuda_kernels_support(dtype, head_dim);
  if (supported.is_ok()) return supported;
  return Status(supported.code(), str_cat(op, ": ", supported.message()));
}

Status check_aligned(const char* op, const char* name, const void* ptr, size_t alignment) {
  SEQPAR_REQUIRE(reinterpret_cast<uintptr_t>(ptr) % alignment == 0, StatusCode::kInvalidArgument,
                 op, ": ", name, " must be ", alignment, "-byte aligned for the CUDA kernels");
  return Status::ok();
}

Status check_grid(const char* op, const BlockShape& s) {
  SEQPAR_REQUIRE(s.batch <= kMaxGridYZ && s.heads_q <= kMaxGridYZ, StatusCode::kUnsupported, op,
                 ": the CUDA kernels take at most ", kMaxGridYZ,
                 " batch entries and heads (got B=", s.batch, " Hq=", s.heads_q, ")");
  return Status::ok();
}

Status check_positions(const char* op, const PositionMap& q_pos, const PositionMap& k_pos) {
  SEQPAR_RETURN_IF_ERROR(check_aligned(op, "q_pos.index", q_pos.index, alignof(int64_t)));
  return check_aligned(op, "k_pos.index", k_pos.index, alignof(int64_t));
}

KernelShape kernel_shape(const BlockShape& s) {
  return {s.batch, s.seq_q, s.seq_k, s.heads_q, s.heads_kv, s.head_dim, s.heads_q / s.heads_kv};
}

}  // namespace

std::span<const int64_t> cuda_supported_head_dims() { return cuda_attention::kSupportedHeadDims; }

Status cuda_kernels_support(DType dtype, int64_t head_dim) {
  SEQPAR_REQUIRE(dtype == DType::kBF16 || dtype == DType::kF16, StatusCode::kUnsupported,
                 "the CUDA kernels take bf16 or fp16 q/k/v (got ", dtype_name(dtype),
                 "); fp32 storage runs on host targets");
  const std::span<const int64_t> dims = cuda_supported_head_dims();
  const std::string listed = listing(
      dims, [](int64_t dim) { return dim; }, " and ");
  SEQPAR_REQUIRE(std::find(dims.begin(), dims.end(), head_dim) != dims.end(),
                 StatusCode::kUnsupported, "the CUDA kernels support head_dim ", listed, " (got ",
                 head_dim, ")");
  return Status::ok();
}

size_t cuda_block_scratch_bytes(const BlockShape& /*shape*/) { return 0; }

Status cuda_block_forward(const BlockForwardParams& p, void* stream) {
  constexpr const char* kOp = "block forward";
  SEQPAR_RETURN_IF_ERROR(check_supported(kOp, p.dtype, p.shape.head_dim));
  SEQPAR_RETURN_IF_ERROR(check_grid(kOp, p.shape));
  if (p.shape.seq_q == 0) return Status::ok();
  if (p.shape.seq_k == 0 && p.accumulate) return Status::ok();  // merging nothing
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "q", p.q, 16));
  if (p.shape.seq_k > 0) {
    SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "k", p.k, 16));
    SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "v", p.v, 16));
  }
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "out", p.out, 8));
  SEQPAR_RETURN_IF_ERROR(check_positions(kOp, p.q_pos, p.k_pos));
  ForwardKernelParams kp;
  kp.shape = kernel_shape(p.shape);
  kp.dtype = p.dtype;
  kp.q = p.q;
  kp.k = p.k;
  kp.v = p.v;
  kp.out = p.out;
  kp.lse = p.lse;
  kp.q_pos = p.q_pos;
  kp.k_pos = p.k_pos;
  kp.mask = p.mask;
  kp.scale_log2 = p.softmax_scale * kLog2e;
  kp.accumulate = p.accumulate;
  SEQPAR_CUDA_CHECK(cuda_attention::launch_block_forward(kp, as_stream(stream)));
  return Status::ok();
}

Status cuda_block_backward(const BlockBackwardParams& p, void* stream) {
  constexpr const char* kOp = "block backward";
  SEQPAR_RETURN_IF_ERROR(check_supported(kOp, p.dtype, p.shape.head_dim));
  SEQPAR_RETURN_IF_ERROR(check_grid(kOp, p.shape));
  if (p.shape.seq_q == 0 || p.shape.seq_k == 0) return Status::ok();
  if (p.dq == nullptr && p.dk == nullptr) return Status::ok();
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "q", p.q, 16));
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "k", p.k, 16));
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "v", p.v, 16));
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "dout", p.dout, 16));
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "dq", p.dq, 8));
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "dk", p.dk, 8));
  SEQPAR_RETURN_IF_ERROR(check_aligned(kOp, "dv", p.dv, 8));
  SEQPAR_RETURN_IF_ERROR(check_positions(kOp, p.q_pos, p.k_pos));
  BackwardKernelParams kp;
  kp.shape = kernel_shape(p.shape);
  kp.dtype = p.dtype;
  kp.q = p.q;
  kp.k = p.k;
  kp.v = p.v;
  kp.dout = p.dout;
  kp.lse = p.lse;
  kp.delta = p.delta;
  kp.dq = p.dq;
  kp.dk = p.dk;
  kp.dv = p.dv;
  kp.q_pos = p.q_pos;
  kp.k_pos = p.k_pos;
  kp.mask = p.mask;
  kp.softmax_scale = p.softmax_scale;
  kp.scale_log2 = p.softmax_scale * kLog2e;
  if (p.dk != nullptr) {
    SEQPAR_CUDA_CHECK(cuda_attention::launch_block_backward_dkdv(kp, as_stream(stream)));
  }
  if (p.dq != nullptr) {
    SEQPAR_CUDA_CHECK(cuda_attention::launch_block_backward_dq(kp, as_stream(stream)));
  }
  return Status::ok();
}

Status cuda_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch,
                            int64_t seq, int64_t heads, int64_t head_dim, float* delta,
                            void* stream) {
  SEQPAR_REQUIRE(is_storage_dtype(dtype), StatusCode::kInvalidArgument,
                 "attention delta: out/dout dtype must be fp32, bf16 or fp16 (got ",
                 dtype_name(dtype), ")");
  const int64_t rows = batch * seq * heads;
  if (rows == 0 || head_dim == 0) return Status::ok();
  SEQPAR_REQUIRE(rows / 8 < kMaxGridX, StatusCode::kUnsupported, "attention delta: ", rows,
                 " rows exceed the CUDA grid");
  RowwiseKernelParams kp;
  kp.batch = batch;
  kp.seq = seq;
  kp.heads = heads;
  kp.head_dim = head_dim;
  kp.dtype = dtype;
  kp.out = out;
  kp.dout = dout;
  kp.delta = delta;
  SEQPAR_CUDA_CHECK(cuda_attention::launch_attention_delta(kp, as_stream(stream)));
  return Status::ok();
}

Status cuda_merge_partials(float* out, float* lse, const float* out2, const float* lse2,
                           int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                           void* stream) {
  const int64_t rows = batch * seq * heads;
  if (rows == 0) return Status::ok();
  SEQPAR_REQUIRE(rows / 8 < kMaxGridX, StatusCode::kUnsupported, "merge partials: ", rows,
                 " rows exceed the CUDA grid");
  RowwiseKernelParams kp;
  kp.batch = batch;
  kp.seq = seq;
  kp.heads = heads;
  kp.head_dim = head_dim;
  kp.merge_out = out;
  kp.merge_lse = lse;
  kp.merge_out2 = out2;
  kp.merge_lse2 = lse2;
  SEQPAR_CUDA_CHECK(cuda_attention::launch_merge_partials(kp, as_stream(stream)));
  return Status::ok();
}

}  // namespace seqpar
