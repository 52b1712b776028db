#pragma once
// Problem cases of the Ulysses tests (threads and mpirun): causal and full, MHA, GQA 2/4/8, MQA,
// head counts that split unevenly over the ranks, batch 2, fp32, bf16 and fp16.
#include <vector>

#include "scheme_cases.hpp"

namespace seqpar::testing {

// The cases that are valid on `ranks` ranks (Ulysses needs Hq >= P).
std::vector<SchemeCase> ulysses_cases(int ranks);

}  // namespace seqpar::testing
