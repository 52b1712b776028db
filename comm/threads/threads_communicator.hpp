#pragma once
// The threads backend: ranks are threads of one process sharing memory (tests, one-host runs).
// Buffers are host memory, or, for communicators made for Device::kCuda, device memory: the P
// ranks then share the one (possibly emulated) GPU, and every copy and reduction runs on it,
// ordered with each rank's compute stream (Communicator::set_stream) by CUDA events as
// comm/communicator.hpp says; each communicator, split children included, has a communication
// stream of its own, and the host never waits for the device. Reductions run in rank order
// 0..P-1 (fp32/fp64/ints in their own type, bf16/fp16 accumulated in fp32), on the host or in a
// kernel, so every rank gets the same bits either way.
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.hpp"
#include "core/tensor.hpp"

namespace seqpar {

// Shared state of the ranks of one group (defined in comm/threads/threads_group.hpp).
class ThreadsGroup;

// One communicator per rank, all on one new group; hand communicator r to the thread of rank r.
// Device::kCuda: device memory (device_memory() is true) of the calling thread's current CUDA
// device, which the ranks' threads must use too; kUnsupported in a build without CUDA, without a
// visible device, or for more than threads_device::kMaxReduceRanks (64) ranks.
StatusOr<std::vector<std::unique_ptr<Communicator>>> make_threads_communicators(
    int ranks, Device device = Device::kHost);

// Runs body(communicator of rank r) on `ranks` new threads, with each thread's log rank set (and,
// for Device::kCuda, the calling thread's CUDA device current).
// A rank whose body fails (or throws: kInternal) aborts the group, so the other ranks' waits
// fail fast with kAborted. Returns ok, or the first root-cause error (a non-kAborted one when
// there is one), its message prefixed with the rank that returned it; or
// make_threads_communicators' error.
Status run_threads(int ranks, const std::function<Status(Communicator&)>& body,
                   Device device = Device::kHost);

}  // namespace seqpar
