#pragma once
// Inputs defined by (seed, tensor, global index): each rank fills its own shard, and the
// reference builds the whole tensors, with no communication (the nccl-tests way).
// Values are uniform in [-1, 1), rounded to the storage dtype, so the fp64 reference sees
// exactly what the kernels see.
#include <cstdint>

#include "core/host_buffer.hpp"
#include "partition/layout.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

enum class InputTensor : uint64_t { kQ = 1, kK = 2, kV = 3, kDout = 4 };

// Heads of `tensor`: Hq for q and dout, Hkv for k and v.
int64_t input_heads(const AttentionProblem& p, InputTensor tensor);

// Rank `rank`'s shard (B, S_local, H, D) of `tensor`, in the storage dtype.
void fill_input_shard(const AttentionProblem& p, const Layout& layout, int rank, uint64_t seed,
                      InputTensor tensor, void* shard);

// The whole tensor (B, S, H, D) as fp64 (values rounded through the storage dtype).
void fill_input_global(const AttentionProblem& p, uint64_t seed, InputTensor tensor,
                       double* global);

// One token's row (B-th batch, token t) of the whole tensor: (H, D) in the storage dtype.
void fill_input_token(const AttentionProblem& p, uint64_t seed, InputTensor tensor, int64_t b,
                      int64_t t, void* row);

// A rank's inputs and outputs for one training step, allocated once.
struct RankTensors {
  HostBuffer q, k, v, dout;  // (B, S_local, H, D) storage dtype
  HostBuffer out, dq, dk, dv;
  HostBuffer lse;  // (B, Hq, S_local) fp32
  Status allocate(const AttentionProblem& p, int64_t local_seq);
};

}  // namespace seqpar
