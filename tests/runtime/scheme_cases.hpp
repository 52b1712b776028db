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
  int64_t chunk;  // tokens per zigzag chunk; seq = 2 * P * chunk
  int64_t batch;
  DType dtype;
  std::string name() const;
};

std::vector<SchemeCase> scheme_cases();

// A RunOptions for `c` on `ranks` ranks: forward + backward, --check, seed varied by case.
RunOptions options_for(const SchemeCase& c, int ranks, uint64_t seed);

}  // namespace seqpar::testing
