#pragma once
// Problem cases and grids of the hybrid tests (threads and mpirun): causal and full, MHA, GQA 4
// and 2, MQA, heads that split unevenly inside a group (Hq = 6, Hkv = 2 on U = 4), batch 2, fp32
// and bf16. Token counts per rank are even, so S = P * t divides by 2R * U for every grid; cases
// with extra_tokens add 2R * extra_tokens, so a group's S/R tokens split unevenly when U = 3 or 4.
#include <vector>

#include "scheme_cases.hpp"

namespace seqpar::testing {

struct HybridGridCase {
  int ulysses;  // U: ranks per Ulysses group
  int rings;    // R: groups in the ring
  int ranks() const { return ulysses * rings; }
};

// U x R in {1x1, 1x2, 2x1, 3x1, 1x3, 2x2, 2x3, 3x2, 4x2, 2x4}: P in {1, 2, 3, 4, 6, 8}.
std::vector<HybridGridCase> hybrid_grids();

// The cases valid on a group of `ulysses` ranks (Hq >= U).
std::vector<SchemeCase> hybrid_cases(int ulysses);

// options_for(c, ranks) with the hybrid's U set.
StepConfig hybrid_options_for(const SchemeCase& c, const HybridGridCase& grid);

}  // namespace seqpar::testing
