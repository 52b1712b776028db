#pragma once
// The GPU virtual-rank benchmark: P virtual ranks on the one GPU, each rank's every
// step of ring, striped, zigzag and lightseq timed with the CUDA block kernels, and one rank's
// whole sequence as one S x S block, into the EfficiencyInput that compare_efficiency()
// (model/efficiency_check.hpp) turns into measured vs predicted efficiency. CUDA builds only
// (SEQPAR_HAVE_CUDA); the file efficiency_cuda.cpp is compiled only then.
//
// How it measures: one set of device tensors for the whole sequence (q, dO (B, S, Hq, D) and
// k, v (B, S, Hkv, D) random in the storage dtype; fp32 out, lse, delta, dq, dk, dv as scratch),
// each block reading the slice of its shards; positions as affine maps where a shard is one
// affine segment (contiguous, striped) and as device index arrays otherwise (zigzag). Per block
// and repeat, CUDA events around run_block_forward and around run_block_backward (the block
// kernels alone: delta is computed once per rank and pass, not per step, and is left out on
// both sides) on one stream; accumulate mode as the runtime uses it. The repeats go round every
// block in turn (after `warmup` rounds), and each block's time is the median of its repeats.
// Backward reads a fixed finite LSE (8.0), so its time does not depend on the forward's values.
//
// The rate: the problem's mask on t x t blocks at positions 0..t-1 for t = the shard size and
// t = S (the whole-sequence block itself), FLOPs from the kernel's kept tiles
// (rate_from_blocks), stored in EfficiencyInput::rate: the model fed the rate of this run.
#ifdef SEQPAR_HAVE_CUDA
#include <vector>

#include "model/efficiency_check.hpp"

namespace seqpar {

struct CudaStepOptions {
  int warmup = 1;        // untimed rounds over every block first
  int repeats = 5;       // timed rounds; each block's median is kept
  bool progress = true;  // one line per round on stderr
};

// kUnsupported when no CUDA device is visible or the kernels do not take the problem (dtype
// bf16/fp16, a head dim with CUDA kernel instances); kOutOfMemory when the whole-sequence tensors
// do not fit.
StatusOr<EfficiencyInput> measure_cuda_steps(const AttentionProblem& problem, int ranks,
                                             bool backward, const std::vector<SchemeKind>& schemes,
                                             const CudaStepOptions& options);

}  // namespace seqpar
#endif
