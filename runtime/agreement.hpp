#pragma once
// Agreement across ranks: on a local outcome, so that a failure on one rank (out of memory, say)
// fails the collective call on every rank at once instead of leaving the others to time out; and
// on a plan's config, so that ranks given different problems fail at once with a message naming
// the field and the ranks.
#include <cstdint>
#include <span>

#include "comm/communicator.hpp"

namespace seqpar {

// Collective. Returns `local` on a rank that failed, and on the others an error naming the
// failed ranks and `what` they were doing.
Status agree_across_ranks(const Status& local, Communicator& comm, const char* what);

// Collective. Every rank learns whether all ranks hold the same `values` (one per field of
// `names`, the same count on every rank); a mismatch fails on every rank with kMismatch:
// "ranks disagree on the plan: seq is 4096 on rank 0 but 2048 on rank 2".
Status check_ranks_agree(std::span<const char* const> names, std::span<const int64_t> values,
                         Communicator& comm);

}  // namespace seqpar
