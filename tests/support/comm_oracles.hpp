#pragma once
// Closed-form per-rank communication formulas of every scheme and decoder, written apart from the
// schedules (runtime/schemes/) so that the calls and bytes a schedule lists, and the
// communicators' counters, are checked against something independent of both. Each formula is
// the one stated in its scheme's header comment; the byte conventions are the communicators'
// (comm/communicator.hpp).
//
// One file per scheme under tests/support/oracles/ defines its oracle, named after its
// descriptor in runtime/schemes.def (kZigzagScheme -> kZigzagSchemeOracle): the table of
// oracles is made from that list, so a scheme registered without an oracle does not link into
// the tests (docs/architecture.md, "Adding a scheme").
#include <cstdint>

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

// What `rank` sends in one forward / backward of a scheme.
struct SchemeOracle {
  CommVolume (*forward)(const Shape& shape, int rank);
  CommVolume (*backward)(const Shape& shape, int rank);
};

// What `rank` sends in one decoding step of q_len new tokens over a cache of `cache_length`
// tokens (a prompt of problem.seq tokens, then token t >= S on rank t mod P).
struct DecoderOracle {
  CommVolume (*step)(const Shape& shape, int64_t q_len, int64_t cache_length, int rank);
};

bool has_oracle(SchemeKind scheme);
CommVolume forward(SchemeKind scheme, const Shape& shape, int rank);
CommVolume backward(SchemeKind scheme, const Shape& shape, int rank);
CommVolume decode_step(DecoderKind decoder, const Shape& shape, int64_t q_len, int64_t cache_length,
                       int rank);

}  // namespace seqpar::oracle
