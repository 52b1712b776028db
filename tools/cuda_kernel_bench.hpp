#pragma once
// Timing of the CUDA block kernels for seqpar-bench --mode kernel --device cuda: forward and
// backward (delta preprocess + dK/dV + dQ kernels) of one problem shape on one GPU, timed with
// CUDA events, median of many runs after warm-up.
#include <cstdint>
#include <string>

#include "attention/block_params.hpp"
#include "core/status.hpp"

namespace seqpar {

struct CudaKernelBenchConfig {
  int64_t batch = 1, seq = 4096, heads = 16, kv_heads = 16, head_dim = 128;
  DType dtype = DType::kBF16;
  MaskKind mask = MaskKind::kFull;
  int iters = 30, warmup = 5;
};

struct CudaKernelBenchResult {
  std::string gpu;  // device name
  double fwd_ms = 0.0, bwd_ms = 0.0;
};

// Fails with kUnsupported in builds without CUDA and when no device is visible.
StatusOr<CudaKernelBenchResult> bench_cuda_kernel(const CudaKernelBenchConfig& cfg);

}  // namespace seqpar
