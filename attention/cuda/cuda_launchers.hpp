#pragma once
// The CUDA block kernels as plain C++ calls (no device code here): attention/dispatch.cpp calls
// these for Device::kCuda targets. Each checks what the CUDA kernels support (bf16/fp16 storage,
// the head dims with template instances, pointer alignment, grid limits), then launches on
// `stream` and checks the launch. Pointers are device pointers, PositionMap::index included ((Sq)
// or (Sk) int64 in device memory). Only built when SEQPAR_HAVE_CUDA is on.
#include <cstddef>
#include <cstdint>
#include <span>

#include "attention/block_params.hpp"
#include "core/status.hpp"

namespace seqpar {

// The head dims the CUDA kernels have template instances for (kernel_params.hpp's list).
std::span<const int64_t> cuda_supported_head_dims();
// Whether the CUDA kernels take `dtype` storage and `head_dim`: kUnsupported naming what they
// take otherwise ("the CUDA kernels support head_dim 64 and 128 (got 96)").
Status cuda_kernels_support(DType dtype, int64_t head_dim);

// Device workspace the CUDA kernels need: none (dQ has its own kernel, so there is no fp32 dQ
// accumulator to carve; every kernel writes straight into the caller's buffers).
size_t cuda_block_scratch_bytes(const BlockShape& shape);

Status cuda_block_forward(const BlockForwardParams& p, void* stream);
Status cuda_block_backward(const BlockBackwardParams& p, void* stream);
Status cuda_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch,
                            int64_t seq, int64_t heads, int64_t head_dim, float* delta,
                            void* stream);
Status cuda_merge_partials(float* out, float* lse, const float* out2, const float* lse2,
                           int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                           void* stream);

}  // namespace seqpar
