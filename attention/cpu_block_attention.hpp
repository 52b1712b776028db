#pragma once
// CPU blockwise attention kernels honouring the block contract (block_params.hpp):
// tiles of queries x keys with online softmax, fp32 accumulation, O(tile) scratch per call
// (never O(Sq * Sk)), tiles skipped when the mask keeps none of their pairs.
#include <cstdint>

#include "attention/block_params.hpp"
#include "core/status.hpp"

namespace seqpar {

// Checks the params (pointers, shape, Hq % Hkv, dtype) at the API boundary.
Status validate_block_params(const BlockForwardParams& p);
Status validate_block_params(const BlockBackwardParams& p);

void cpu_block_forward(const BlockForwardParams& p);
void cpu_block_backward(const BlockBackwardParams& p);

// Floats of work area that forward and backward need for blocks of `shape` (the larger of the
// two; `backward` false: forward's alone), for callers that pass params.scratch from their own
// workspace.
size_t cpu_block_scratch_floats(const BlockShape& shape, bool backward = true);

// delta (B, H, S) fp32 = rowsum(dout * out) with out, dout (B, S, H, D) in `dtype`.
void cpu_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch, int64_t seq,
                         int64_t heads, int64_t head_dim, float* delta);

// Merge partial (out2, lse2) into (out, lse), all fp32, out (B, S, H, D), lse (B, H, S).
// Exact for fully masked rows (lse = -inf on either side).
void cpu_merge_partials(float* out, float* lse, const float* out2, const float* lse2, int64_t batch,
                        int64_t seq, int64_t heads, int64_t head_dim);

}  // namespace seqpar
