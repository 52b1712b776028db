#pragma once
// Agreement across ranks on a local outcome, so that a failure on one rank (out of memory, say)
// fails the collective call on every rank at once instead of leaving the others to time out.
#include "comm/communicator.hpp"

namespace seqpar {

// Collective. Returns `local` on a rank that failed, and on the others an error naming the
// failed ranks and `what` they were doing.
Status agree_across_ranks(const Status& local, Communicator& comm, const char* what);

}  // namespace seqpar
