#pragma once
// The CUDA side of TreeCombine::combine (runtime/tree_combine.hpp): the two elementwise passes
// around its all-reduces, as kernels on the combine's stream. Plain C++ declarations; the
// kernels are in tree_combine.cu. CUDA builds only.
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>

namespace seqpar::cuda_tree_combine {

// Rows of (B, S, H) with D values each: out (B, S, H, D) and lse (B, H, S), fp32; max (B, H, S)
// the max over ranks of lse; num (B, S, H, D) and den (B, H, S) the packed sums' halves.
struct CombineRows {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
  float* out = nullptr;
  float* lse = nullptr;
  const float* max = nullptr;
  float* num = nullptr;
  float* den = nullptr;
  int64_t keep_begin = 0, keep_end = 0;  // the batches normalise writes back
};

// num = out * w, den = w, w = exp(lse - max) (0 for a fully masked row, lse -inf).
cudaError_t launch_weigh(const CombineRows& rows, cudaStream_t stream);
// For batches [keep_begin, keep_end): out = num / den, lse = max + log(den) (den 0: out 0, lse
// -inf).
cudaError_t launch_normalise(const CombineRows& rows, cudaStream_t stream);

}  // namespace seqpar::cuda_tree_combine
#endif
