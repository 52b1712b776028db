#pragma once
// The threads backend: ranks are threads of one process sharing memory (tests, one-host runs).
// Buffers are host memory. Reductions run in rank order 0..P-1 (fp32/fp64/ints in their own
// type, bf16/fp16 accumulated in fp32), so every rank gets the same bits.
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.hpp"

namespace seqpar {

// Shared state of the ranks of one group (defined in comm/threads/threads_group.hpp).
class ThreadsGroup;

// One communicator per rank, all on one new group; hand communicator r to the thread of rank r.
std::vector<std::unique_ptr<Communicator>> make_threads_communicators(int ranks);

// Runs body(communicator of rank r) on `ranks` new threads, with each thread's log rank set.
// A rank whose body fails (or throws: kInternal) aborts the group, so the other ranks' waits
// fail fast with kAborted. Returns ok, or the first root-cause error (a non-kAborted one when
// there is one), its message prefixed with the rank that returned it.
Status run_threads(int ranks, const std::function<Status(Communicator&)>& body);

}  // namespace seqpar
