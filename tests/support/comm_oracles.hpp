#pragma once
// Closed-form per-rank communication formulas of every scheme and decoder, written apart from the
// schedules (runtime/schemes/) so that the calls and bytes a schedule lists, and the
// communicators' counters, are checked against something independent of both. Each formula is
// the one stated in its scheme's header comment; the byte conventions are the communicators'
// (comm/communicator.hpp).
//
// A scheme registered without an oracle here fails the registry test (tests/runtime/
// scheme_registry_test.cpp): adding a scheme means writing its formula down twice, once as a
// schedule and once here.
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"
#include "runtime/scheme_kind.hpp"

namespace seqpar::oracle {

struct Shape {
  AttentionProblem problem;
  int ranks = 1;
  int ulysses = 1;         // hybrid's U
  int ranks_per_node = 0;  // tree's hierarchy (0: flat)
};

// What `rank` sends in one forward / backward; false when no oracle covers `scheme`.
bool has_oracle(SchemeKind scheme);
CommVolume forward(SchemeKind scheme, const Shape& shape, int rank);
CommVolume backward(SchemeKind scheme, const Shape& shape, int rank);

// What `rank` sends in one decoding step of q_len new tokens over a cache of `cache_length`
// tokens (a prompt of problem.seq tokens, appended round-robin).
CommVolume decode_step(DecoderKind decoder, const Shape& shape, int64_t q_len, int64_t cache_length,
                       int rank);

}  // namespace seqpar::oracle
