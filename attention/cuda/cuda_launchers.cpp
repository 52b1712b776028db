// cuda_block_forward / cuda_block_backward / cuda_attention_delta / cuda_merge_partials: check
// what the CUDA kernels support (the params themselves were validated at the API boundary),
// turn the block params into each kernel family's params and launch on the caller's stream.
#include "attention/cuda/cuda_launchers.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>

#include "attention/cuda/kernel_params.hpp"
#include "core/cuda_check.hpp"
#include "core/listing.hpp"
#ifdef SEQPAR_CUDA_EMULATION
#include "cuda_emu/device.hpp"
#endif

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

// The emulated build's stand-in for checking the kernels' plain loads and stores one by one: the
// kernels read or write [ptr, ptr + bytes) in place, so it must lie inside one device allocation
// (a pageable host pointer, which a GPU would fault on, is refused by name). Real builds skip it:
// up to 11 driver queries per launch are too dear for a decode step's microsecond kernels, and
// the pointers our own code hands the kernels are what CI checks here.
Status check_device_range([[maybe_unused]] const char* op, [[maybe_unused]] const char* name,
                          [[maybe_unused]] const void* ptr, [[maybe_unused]] size_t bytes) {
#ifdef SEQPAR_CUDA_EMULATION
  if (bytes == 0) return Status::ok();
  cudaPointerAttributes attributes{};
  SEQPAR_CUDA_CHECK(cudaPointerGetAttributes(&attributes, ptr));
  SEQPAR_REQUIRE(attributes.type != cudaMemoryTypeUnregistered, StatusCode::kInvalidArgument, op,
                 ": ", name, " is pageable host memory; the CUDA kernels need device memory");
  SEQPAR_REQUIRE(cuda_emu::device_contains(ptr, bytes), StatusCode::kInvalidArgument, op, ": ",
                 name, "'s ", bytes, " bytes run past its device allocation");
#endif
  return Status::ok();
}

// Every tensor a block kernel touches, at the extent its shape gives (fp32 for out, LSE, delta
// and the gradients; an indexed position map's Sq or Sk entries).
struct BlockExtents {
  size_t q, kv, q_f32, kv_f32, rows_f32, q_pos, k_pos;
  BlockExtents(const BlockShape& s, DType dtype, const PositionMap& q_map,
               const PositionMap& k_map) {
    const auto e = static_cast<int64_t>(dtype_size(dtype));
    const int64_t q_elems = s.batch * s.seq_q * s.heads_q * s.head_dim;
    const int64_t kv_elems = s.batch * s.seq_k * s.heads_kv * s.head_dim;
    q = static_cast<size_t>(q_elems * e);
    kv = static_cast<size_t>(kv_elems * e);
    q_f32 = static_cast<size_t>(q_elems) * sizeof(float);
    kv_f32 = static_cast<size_t>(kv_elems) * sizeof(float);
    rows_f32 = static_cast<size_t>(s.batch * s.heads_q * s.seq_q) * sizeof(float);
    q_pos = q_map.index ? static_cast<size_t>(s.seq_q) * sizeof(int64_t) : 0;
    k_pos = k_map.index ? static_cast<size_t>(s.seq_k) * sizeof(int64_t) : 0;
  }
};

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
  const BlockExtents x(p.shape, p.dtype, p.q_pos, p.k_pos);
  for (const auto& [name, ptr, bytes] :
       {std::tuple<const char*, const void*, size_t>{"q", p.q, x.q},
        {"k", p.k, x.kv},
        {"v", p.v, x.kv},
        {"out", p.out, x.q_f32},
        {"lse", p.lse, x.rows_f32},
        {"q_pos.index", p.q_pos.index, x.q_pos},
        {"k_pos.index", p.k_pos.index, x.k_pos}}) {
    SEQPAR_RETURN_IF_ERROR(check_device_range(kOp, name, ptr, bytes));
  }
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
  const BlockExtents x(p.shape, p.dtype, p.q_pos, p.k_pos);
  const bool dkdv = p.dk != nullptr;
  for (const auto& [name, ptr, bytes] :
       {std::tuple<const char*, const void*, size_t>{"q", p.q, x.q},
        {"k", p.k, x.kv},
        {"v", p.v, x.kv},
        {"dout", p.dout, x.q},
        {"lse", p.lse, x.rows_f32},
        {"delta", p.delta, x.rows_f32},
        {"dq", p.dq, p.dq ? x.q_f32 : 0},
        {"dk", p.dk, dkdv ? x.kv_f32 : 0},
        {"dv", p.dv, dkdv ? x.kv_f32 : 0},
        {"q_pos.index", p.q_pos.index, x.q_pos},
        {"k_pos.index", p.k_pos.index, x.k_pos}}) {
    SEQPAR_RETURN_IF_ERROR(check_device_range(kOp, name, ptr, bytes));
  }
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
