#pragma once
// The plan's finite check (PlanConfig::check_finite): a rank's inputs and gradients scanned for
// NaN and Inf, one pass over the shards, small next to the attention work. Inputs are scanned,
// not outputs, because a NaN input need not reach the outputs as NaN (a fast exp can turn it
// into a finite wrong value).
//
// Host memory: require_finite, synchronous. Device memory: DeviceFiniteCheck, a deferred report
// (like a found-inf flag): kernels on the plan's stream count each tensor's non-finite elements
// into a device record, and the host reads a pinned copy of the records only once an event says
// the device has written it, so a step never waits on the host for the device.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/dtype.hpp"
#include "core/status.hpp"

namespace seqpar {

// kInvalidArgument naming `what`, the first non-finite element and how many there are, when any
// of the `n` values of `data` (in `dtype`) is NaN or Inf.
Status require_finite(const void* data, DType dtype, size_t n, const char* what);

// The error require_finite returns, for `count` non-finite values of the `n` of `what`, the first
// at element `first`; `when` (empty for a synchronous check) says which step found them.
Status non_finite_error(const char* what, DType dtype, size_t n, uint64_t count, uint64_t first,
                        const std::string& when);

// One tensor a device plan checks: its name in messages and its elements on this rank.
struct CheckedTensor {
  const char* what = "";
  size_t n = 0;
};

// The finite check of a device plan: made once (its device records, two pinned host copies of
// them and an event each; nothing is allocated per step), then per step
//   poll()                      the verdict of the reports the device has finished (no waiting:
//                               cudaEventQuery); ok when none is new
//   begin_step(step, kind)      zero the step's records
//   count(tensor, data) ...     count a tensor's non-finite elements
//   end_step()                  keep the step's records if they are the first to find any,
//                               copy the kept report to the host copy, record the event
// all on `stream`, in stream order. Steps alternate between the two host copies, so while the
// device runs one step behind the host, poll() still reads the report of the step before (one
// copy alone would be rewritten by every step before the host could read it). The first failing
// step stays the verdict from then on: its report is kept on the device until read, so a later
// clean step cannot overwrite it. wait(timeout) is the one call that waits on the host for the
// device, at most `timeout` (kTimeout past it: a stream stuck behind a failed peer does not hang
// the caller). CUDA builds only: elsewhere create() is kUnsupported.
class DeviceFiniteCheck {
 public:
  enum class StepKind : uint8_t { kForward = 0, kBackward = 1 };

  // `tensors`: at most 8, indexed by count()'s `tensor`.
  static StatusOr<std::unique_ptr<DeviceFiniteCheck>> create(
      void* stream, DType dtype, std::span<const CheckedTensor> tensors);
  ~DeviceFiniteCheck();
  DeviceFiniteCheck(const DeviceFiniteCheck&) = delete;
  DeviceFiniteCheck& operator=(const DeviceFiniteCheck&) = delete;

  Status poll();
  Status wait(std::chrono::milliseconds timeout);
  Status begin_step(uint64_t step, StepKind kind);
  Status count(int tensor, const void* data);
  Status end_step();

 private:
  DeviceFiniteCheck() = default;
  // The verdict of host copy `slot` of the report (which the device has finished writing).
  Status read_report(int slot);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace seqpar
