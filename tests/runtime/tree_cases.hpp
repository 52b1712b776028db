#pragma once
// Tree attention test cases shared by the threads and mpirun tests: causal and full, GQA 1, 2,
// 4, 8 and MQA, odd and tile-crossing shards, batch 2, fp32 and bf16.
#include <string>
#include <vector>

#include "harness/training_step.hpp"

namespace seqpar::testing {

struct TreeCase {
  MaskKind mask;
  int64_t heads_q, heads_kv, head_dim;
  int64_t tokens_per_rank;  // seq = P * tokens_per_rank + extra_tokens
  int64_t batch;
  DType dtype;
  int64_t extra_tokens = 0;  // S % P != 0: shards differ by a token, gathered slices are padded
  std::string name() const;
};

std::vector<TreeCase> tree_cases();

// Forward + backward, --check, a seed of its own (from the case and the rank count).
StepConfig tree_options_for(const TreeCase& c, int ranks);

}  // namespace seqpar::testing
