#pragma once
// Agreement across ranks: on a local outcome, so that a failure on one rank (out of memory, say)
// fails the collective call on every rank at once instead of leaving the others to time out; and
// on a plan's config, so that ranks given different problems fail at once with a message naming
// the field and the ranks.
#include <cstdint>
#include <vector>

#include "comm/communicator.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

// Collective. Returns `local` on a rank that failed, and on the others an error naming the
// failed ranks and `what` they were doing.
Status agree_across_ranks(const Status& local, Communicator& comm, const char* what);

// The config values a plan's ranks must agree on, named.
struct Fingerprint {
  std::vector<const char*> names;
  std::vector<int64_t> values;
  void add(const char* name, int64_t value) {
    names.push_back(name);
    values.push_back(value);
  }
  // batch, seq, heads, kv_heads, head_dim, mask, dtype and the softmax scale's bits.
  void add_problem(const AttentionProblem& p);
};

// Collective. Every rank learns whether all ranks hold the same fingerprint (the same fields on
// every rank); a mismatch fails on every rank with kMismatch: "ranks disagree on the plan: seq
// is 4096 on rank 0 but 2048 on rank 2".
Status check_ranks_agree(const Fingerprint& mine, Communicator& comm);

}  // namespace seqpar
