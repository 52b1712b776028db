#pragma once
// Params structs of the CUDA kernel families (one per family, passed by value as
// __grid_constant__) and the host entry points of each family's .cu file. Plain C++ with the
// CUDA runtime types: included by the .cu files and by cuda_launchers.cpp.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attention/block_params.hpp"
#include "core/dtype.hpp"

namespace seqpar::cuda_attention {

// Head dims with template instances; anything else is refused with kUnsupported.
inline constexpr int64_t kSupportedHeadDims[] = {64, 128};

// Sizes shared by the forward and backward families. Element offsets are int64.
struct KernelShape {
  int64_t batch = 0;
  int64_t seq_q = 0;
  int64_t seq_k = 0;
  int64_t heads_q = 0;
  int64_t heads_kv = 0;
  int64_t head_dim = 0;
  int64_t group = 1;  // heads_q / heads_kv: query head h reads kv head h / group
};

struct ForwardKernelParams {
  KernelShape shape;
  DType dtype = DType::kBF16;
  const void* q = nullptr;  // (B, Sq, Hq, D)
  const void* k = nullptr;  // (B, Sk, Hkv, D)
  const void* v = nullptr;  // (B, Sk, Hkv, D)
  float* out = nullptr;     // (B, Sq, Hq, D) fp32, normalised
  float* lse = nullptr;     // (B, Hq, Sq) fp32, natural log
  PositionMap q_pos;        // index, if any, in device memory
  PositionMap k_pos;
  MaskKind mask = MaskKind::kFull;
  float scale_log2 = 1.0f;  // softmax_scale * log2(e): scores in base-2 units
  bool accumulate = false;
};

struct BackwardKernelParams {
  KernelShape shape;
  DType dtype = DType::kBF16;
  const void* q = nullptr;       // (B, Sq, Hq, D)
  const void* k = nullptr;       // (B, Sk, Hkv, D)
  const void* v = nullptr;       // (B, Sk, Hkv, D)
  const void* dout = nullptr;    // (B, Sq, Hq, D)
  const float* lse = nullptr;    // (B, Hq, Sq) final
  const float* delta = nullptr;  // (B, Hq, Sq)
  float* dq = nullptr;           // (B, Sq, Hq, D) fp32 +=
  float* dk = nullptr;           // (B, Sk, Hkv, D) fp32 +=
  float* dv = nullptr;           // (B, Sk, Hkv, D) fp32 +=
  PositionMap q_pos;
  PositionMap k_pos;
  MaskKind mask = MaskKind::kFull;
  float softmax_scale = 1.0f;
  float scale_log2 = 1.0f;  // softmax_scale * log2(e)
};

// (B, S, H, D) rows of a row-wise op: delta = rowsum(out * dout), or the (O, LSE) merge.
struct RowwiseKernelParams {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  DType dtype = DType::kF32;  // storage of out/dout for delta
  const void* out = nullptr;
  const void* dout = nullptr;
  float* delta = nullptr;             // (B, H, S)
  float* merge_out = nullptr;         // (B, S, H, D) running out
  float* merge_lse = nullptr;         // (B, H, S) running lse
  const float* merge_out2 = nullptr;  // (B, S, H, D) partial
  const float* merge_lse2 = nullptr;  // (B, H, S) partial
};

// Host entry points (one per kernel family): pick the template instance for (dtype, head_dim),
// raise the kernel's dynamic shared-memory limit, launch on `stream`, return cudaGetLastError().
// Callers have checked dtype and head_dim; other values return cudaErrorInvalidValue.
cudaError_t launch_block_forward(const ForwardKernelParams& p, cudaStream_t stream);
cudaError_t launch_block_backward_dq(const BackwardKernelParams& p, cudaStream_t stream);
cudaError_t launch_block_backward_dkdv(const BackwardKernelParams& p, cudaStream_t stream);
cudaError_t launch_attention_delta(const RowwiseKernelParams& p, cudaStream_t stream);
cudaError_t launch_merge_partials(const RowwiseKernelParams& p, cudaStream_t stream);

}  // namespace seqpar::cuda_attention
