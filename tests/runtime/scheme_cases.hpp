#pragma once
// Problem cases shared by the threads and mpirun tests of the ring family: every scheme, causal
// and full, GQA ratios, odd chunk sizes (tiles straddle zigzag chunks), fp32 and bf16.
#include <string>
#include <vector>

#include "launch/run_options.hpp"

namespace seqpar::testing {

struct SchemeCase {
  SchemeKind scheme;
  MaskKind mask;
  int64_t heads_q, heads_kv, head_dim;
  int64_t tokens_per_rank;  // seq = P * tokens_per_rank (even for zigzag: two chunks)
  int64_t batch;
  DType dtype;
  // seq = P * tokens_per_rank + extra_tokens: S % P != 0 gives contiguous layouts shards that
  // differ by a token (hybrid: + 2R * extra_tokens, uneven inside the groups).
  int64_t extra_tokens = 0;
  std::string name() const;
};

std::vector<SchemeCase> scheme_cases();

// A RunOptions for `c` on `ranks` ranks: forward + backward, --check, and a seed of its own
// (from the case and the rank count), so every case runs on different inputs.
RunOptions options_for(const SchemeCase& c, int ranks);

}  // namespace seqpar::testing
