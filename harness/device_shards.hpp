#pragma once
// A rank's step tensors in device memory, for the harness's device plans: the host RankTensors
// (harness/test_data.hpp) hold the inputs made from (seed, global index) and, after the timed
// steps, the outputs the reference check reads; DeviceShards holds the same tensors on the
// device, uploads the inputs once and downloads the outputs once. The device plan's stream is
// the rank's own (created here). CUDA builds only: elsewhere create() is kUnsupported.
#include <memory>

#include "comm/communicator.hpp"
#include "harness/test_data.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

class DeviceShards {
 public:
  // The rank's non-blocking stream (the plan's: PlanConfig::stream).
  static StatusOr<std::unique_ptr<DeviceShards>> create();
  ~DeviceShards();
  DeviceShards(const DeviceShards&) = delete;
  DeviceShards& operator=(const DeviceShards&) = delete;

  void* stream() const;  // cudaStream_t
  // Device tensors the sizes of `host`'s.
  Status allocate(const RankTensors& host);
  // Q, K, V and dO from the host, on the stream (the host tensors must stay until the next sync).
  Status upload_inputs(const RankTensors& host);
  // Out and LSE (and dQ, dK, dV when `backward`) to the host, then waits for the stream.
  Status download_outputs(RankTensors& host, bool backward);
  // Waits until the stream's work is done (the harness's step timing; never inside a step).
  Status sync();

  ForwardArgs forward_args();
  BackwardArgs backward_args();

 private:
  DeviceShards() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The rank's DeviceShards for a plan on `device` (its stream is the plan's), made on every rank
// or failing on every rank; nullptr for host plans. Collective.
StatusOr<std::unique_ptr<DeviceShards>> device_shards_for(Device device, Communicator& comm);

}  // namespace seqpar
