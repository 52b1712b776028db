// One rank's timed training step, communication accounting and reference check.
#include "harness/training_step.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <vector>

#include "comm/comm_staging.hpp"
#include "core/log.hpp"
#include "harness/device_shards.hpp"
#include "runtime/agreement.hpp"
#include "runtime/plan.hpp"

namespace seqpar {

StatusOr<StepReport> run_training_step(const StepConfig& options, Communicator& comm) {
  if (options.timeout_s > 0) {
    comm.set_timeout(std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0)));
  }
  // A forward-only run (--phase prefill, or train without --backward) makes a forward-only plan:
  // no backward buffers in its workspace.
  PlanConfig config = options.plan;
  config.backward = options.backward;
  // A device plan: the tensors on the device, the plan on this rank's own stream.
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceShards> device,
                          device_shards_for(config.device, comm));
  if (device) config.stream = device->stream();
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
  const AttentionProblem& p = plan->problem();
  const int rank = comm.rank();

  RankTensors t;
  Status allocated = t.allocate(p, plan->local_seq());
  if (allocated.is_ok() && device) allocated = device->allocate(t);
  SEQPAR_RETURN_IF_ERROR(agree_across_ranks(allocated, comm, "allocate their tensors"));
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kQ, t.q.data());
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kK, t.k.data());
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kV, t.v.data());
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kDout, t.dout.data());
  ForwardArgs fwd{t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()};
  BackwardArgs bwd{t.q.data(),    t.k.data(),  t.v.data(),  t.out.data(), t.lse.as<float>(),
                   t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data()};
  if (device) {
    SEQPAR_RETURN_IF_ERROR(device->upload_inputs(t));
    fwd = device->forward_args();
    bwd = device->backward_args();
  }

  std::vector<double> step_ms(static_cast<size_t>(options.iters));
  for (int it = 0; it < options.warmup + options.iters; ++it) {
    SEQPAR_RETURN_IF_ERROR(comm.barrier());  // steps start together; outside the timed region
    if (it == options.warmup) plan->reset_comm_stats();
    const auto start = std::chrono::steady_clock::now();
    SEQPAR_RETURN_IF_ERROR(plan->forward(fwd));
    if (options.backward) SEQPAR_RETURN_IF_ERROR(plan->backward(bwd));
    if (device) SEQPAR_RETURN_IF_ERROR(device->sync());  // a device step ends when its work does
    const auto stop = std::chrono::steady_clock::now();
    if (it >= options.warmup) {
      step_ms[static_cast<size_t>(it - options.warmup)] =
          std::chrono::duration<double, std::milli>(stop - start).count();
    }
    SEQPAR_LOG_INFO("step ", it + 1, "/", options.warmup + options.iters, " done");
  }
  // This rank's communication over the timed steps, read before the reductions below add theirs:
  // calls per op kind (barriers, which only separate the timed steps, left out) and bytes, on
  // the plan's communicator and the subgroups its scheme split off it.
  constexpr size_t kOps = static_cast<size_t>(CommOp::kCount);
  const CommStats stats = plan->comm_stats();
  // Each rank compares its own counters with its own formula (ranks may send different amounts).
  CommVolume expected = plan->expected_forward_comm();
  if (options.backward) expected += plan->expected_backward_comm();
  const int64_t steps = options.iters;
  // Maxima over ranks of: (calls..., bytes), their negations, the formula's (calls..., bytes),
  // and a mismatch flag.
  std::array<int64_t, 3 * (kOps + 1) + 1> extremes{};
  for (size_t op = 0; op < kOps; ++op) {
    extremes[op] = op == static_cast<size_t>(CommOp::kBarrier) ? 0 : stats.ops[op].calls;
  }
  extremes[kOps] = stats.total_bytes_sent();
  for (size_t i = 0; i <= kOps; ++i) {
    extremes[kOps + 1 + i] = -extremes[i];
    const int64_t want = i < kOps ? expected.calls[i] : expected.bytes_sent;
    extremes[2 * (kOps + 1) + i] = want;
    if (extremes[i] != want * steps) extremes[3 * (kOps + 1)] = 1;
  }

  StepReport report;
  report.problem = p;
  report.ranks = comm.size();
  report.ulysses_degree = plan->layout().ulysses_degree();
  report.ring_size = report.ranks / report.ulysses_degree;
  report.local_seq = plan->local_seq();
  report.workspace_bytes = plan->workspace_bytes();

  if (device) SEQPAR_RETURN_IF_ERROR(device->download_outputs(t, options.backward));

  // The step takes as long as its slowest rank.
  SEQPAR_RETURN_IF_ERROR(
      all_reduce_host(comm, step_ms.data(), step_ms.size(), DType::kF64, ReduceOp::kMax));
  std::sort(step_ms.begin(), step_ms.end());
  report.time_ms = step_ms[step_ms.size() / 2];
  report.time_ms_min = step_ms.front();
  const double flops = attention_forward_flops(p) * (options.backward ? 3.5 : 1.0);
  report.tflops = flops / (report.time_ms * 1e-3) / 1e12;

  // Largest and smallest totals over ranks, all timed steps together.
  SEQPAR_RETURN_IF_ERROR(
      all_reduce_host(comm, extremes.data(), extremes.size(), DType::kI64, ReduceOp::kMax));
  // Every rank, every op kind, every step: its own formula exactly.
  report.comm_matches_formula = extremes[3 * (kOps + 1)] == 0;
  for (size_t i = 0; i < kOps; ++i) {
    report.measured_comm.calls[i] = extremes[i] / steps;
    report.expected_comm.calls[i] = extremes[2 * (kOps + 1) + i];  // largest over ranks
  }
  report.expected_comm.bytes_sent = extremes[2 * (kOps + 1) + kOps];
  report.measured_comm.bytes_sent = extremes[kOps] / steps;
  report.bytes_sent_min_rank = -extremes[2 * kOps + 1] / steps;

  if (options.check) {
    SEQPAR_ASSIGN_OR_RETURN(
        report.errors,
        check_against_reference(p, plan->layout(), comm, options.seed, t, options.backward));
  }
  return report;
}

}  // namespace seqpar
