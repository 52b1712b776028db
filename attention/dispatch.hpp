#pragma once
// The one place the runtime calls the local block kernels: turns the runtime's target (host or a
// CUDA device + stream) into the backend's kernel. No validation here: callers validate once at
// the API boundary (validate_block_params).
#include <cstdint>

#include "attention/block_params.hpp"
#include "core/status.hpp"
#include "core/tensor.hpp"

namespace seqpar {

struct KernelTarget {
  Device device = Device::kHost;
  void* stream = nullptr;  // cudaStream_t for Device::kCuda; unused on the host
};

// Bytes of work area the kernels need for blocks of `shape` (params.scratch), so a plan can
// carve it from its workspace once and the kernels allocate nothing in its step loop.
// `backward` false: enough for the forward kernel alone (a forward-only plan).
size_t block_kernel_scratch_bytes(const BlockShape& shape, const KernelTarget& target,
                                  bool backward = true);

// Whether the kernels of `device` take `dtype` storage and `head_dim`: the CPU kernels take every
// problem validate_attention_problem accepts; the CUDA kernels bf16 and fp16 with head dims 64
// and 128 (kUnsupported naming what they take, or that the build has no CUDA toolkit).
Status block_kernels_support(Device device, DType dtype, int64_t head_dim);

Status run_block_forward(const BlockForwardParams& p, const KernelTarget& target);
Status run_block_backward(const BlockBackwardParams& p, const KernelTarget& target);

// Block-kernel calls the calling thread has made through run_block_forward / run_block_backward
// (on any target), for tests of which work a rank did: on the threads backend each rank is a
// thread. A thread-local count, so it costs nothing to keep.
struct BlockKernelCalls {
  int64_t forward = 0;
  int64_t backward = 0;
};
BlockKernelCalls block_kernel_calls_on_this_thread();

// delta (B, H, S) fp32 = rowsum(dout * out), out and dout (B, S, H, D) in `dtype`.
Status run_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch,
                           int64_t seq, int64_t heads, int64_t head_dim, float* delta,
                           const KernelTarget& target);

// Merges partial (out2, lse2) into (out, lse), fp32; out (B, S, H, D), lse (B, H, S).
Status run_merge_partials(float* out, float* lse, const float* out2, const float* lse2,
                          int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          const KernelTarget& target);

}  // namespace seqpar
