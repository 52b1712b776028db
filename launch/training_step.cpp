// One rank's timed training step, communication accounting and reference check.
#include "launch/training_step.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/log.hpp"
#include "runtime/agreement.hpp"
#include "runtime/plan.hpp"

namespace seqpar {

StatusOr<StepReport> run_training_step(const RunOptions& options, Communicator& comm) {
  if (options.timeout_s > 0) {
    comm.set_timeout(std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0)));
  }
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(options.plan, comm));
  const AttentionProblem& p = plan->problem();
  const int rank = comm.rank();

  RankTensors t;
  SEQPAR_RETURN_IF_ERROR(
      agree_across_ranks(t.allocate(p, plan->local_seq()), comm, "allocate their tensors"));
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kQ, t.q.data());
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kK, t.k.data());
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kV, t.v.data());
  fill_input_shard(p, plan->layout(), rank, options.seed, InputTensor::kDout, t.dout.data());
  const ForwardArgs fwd{t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()};
  const BackwardArgs bwd{t.q.data(),    t.k.data(),  t.v.data(),  t.out.data(), t.lse.as<float>(),
                         t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data()};

  std::vector<double> step_ms(static_cast<size_t>(options.iters));
  for (int it = 0; it < options.warmup + options.iters; ++it) {
    SEQPAR_RETURN_IF_ERROR(comm.barrier());  // steps start together; outside the timed region
    if (it == options.warmup) comm.reset_stats();
    const auto start = std::chrono::steady_clock::now();
    SEQPAR_RETURN_IF_ERROR(plan->forward(fwd));
    if (options.backward) SEQPAR_RETURN_IF_ERROR(plan->backward(bwd));
    const auto stop = std::chrono::steady_clock::now();
    if (it >= options.warmup) {
      step_ms[static_cast<size_t>(it - options.warmup)] =
          std::chrono::duration<double, std::milli>(stop - start).count();
    }
    SEQPAR_LOG_INFO("step ", it + 1, "/", options.warmup + options.iters, " done");
  }
  // This rank's communication over the timed steps, read before the reductions below add theirs.
  const CommStats stats = comm.stats();
  const int64_t my_bytes = stats.total_bytes_sent();
  const int64_t my_exchanges = stats[CommOp::kExchange].calls;

  StepReport report;
  report.problem = p;
  report.ranks = comm.size();
  report.local_seq = plan->local_seq();
  report.workspace_bytes = plan->workspace_bytes();

  // The step takes as long as its slowest rank.
  SEQPAR_RETURN_IF_ERROR(
      comm.all_reduce(step_ms.data(), step_ms.data(), step_ms.size(), DType::kF64, ReduceOp::kMax));
  std::sort(step_ms.begin(), step_ms.end());
  report.time_ms = step_ms[step_ms.size() / 2];
  report.time_ms_min = step_ms.front();
  const double flops = attention_forward_flops(p) * (options.backward ? 3.5 : 1.0);
  report.tflops = flops / (report.time_ms * 1e-3) / 1e12;

  // Largest and smallest totals over ranks (negated for the minimum), all steps together.
  int64_t extremes[4] = {my_bytes, -my_bytes, my_exchanges, -my_exchanges};
  SEQPAR_RETURN_IF_ERROR(comm.all_reduce(extremes, extremes, 4, DType::kI64, ReduceOp::kMax));
  CommVolume expected = plan->expected_forward_comm();
  if (options.backward) {
    const CommVolume b = plan->expected_backward_comm();
    expected.exchanges += b.exchanges;
    expected.bytes_sent += b.bytes_sent;
  }
  const int64_t steps = options.iters;
  report.bytes_sent_per_rank = extremes[0] / steps;
  report.bytes_sent_min_rank = -extremes[1] / steps;
  report.exchanges_per_rank = extremes[2] / steps;
  report.bytes_expected_per_rank = expected.bytes_sent;
  report.exchanges_expected = expected.exchanges;
  // Every rank sent exactly the formula's bytes in exactly its number of exchanges, every step.
  report.comm_matches_formula =
      extremes[0] == expected.bytes_sent * steps && -extremes[1] == expected.bytes_sent * steps &&
      extremes[2] == expected.exchanges * steps && -extremes[3] == expected.exchanges * steps;

  if (options.check) {
    SEQPAR_ASSIGN_OR_RETURN(
        report.errors,
        check_against_reference(p, plan->layout(), comm, options.seed, t, options.backward));
  }
  return report;
}

}  // namespace seqpar
