#pragma once
// The check of the cost model's compute part against measured per-step block-kernel times of the
// ring family: the issue's "the model, fed with the measured per-step compute of the virtual-rank
// benchmark, predicts the measured efficiency of ring vs zigzag within 10%".
//
// Efficiency of a scheme on P ranks = (one rank's time for the whole sequence / P) / the
// scheme's time. Three figures per scheme:
//   measured   from the measured per-step times in lock step (sum over steps of the slowest
//              rank), or the run's measured wall time when the input has one (a GPU run)
//   predicted  the model alone: kept tiles over the calibrated rate (launch/model_parts.hpp),
//              for every step and for the whole sequence, in lock step
//   fed        the model fed with the measured per-step compute: per step max(slowest rank's
//              measured compute, the step's transfer on the topology), summed (only differs from
//              "measured" when the input has a wall time or a topology is given)
// On a CPU host, measure_host_steps() times every rank's every step sequentially on one core
// (the CPU analogue of the GPU virtual-rank benchmark). The same JSON (efficiency_input_json)
// carries a GPU benchmark's per-step times into compare_efficiency() later.
#include <string>
#include <string_view>
#include <vector>

#include "launch/calibration.hpp"
#include "launch/cost_model.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

struct StepTimings {
  SchemeKind scheme = SchemeKind::kZigzag;
  std::vector<std::vector<double>> forward_seconds;   // (P steps, P ranks): rank r at step s
  std::vector<std::vector<double>> backward_seconds;  // same, empty without backward
  double measured_seconds = 0;  // the run's wall time (fwd, + bwd); 0: not measured
};

struct EfficiencyInput {
  std::string device;
  AttentionProblem problem;
  bool backward = false;
  int ranks = 0;
  double whole_forward_seconds = 0;   // one rank, the whole sequence as one S x S block
  double whole_backward_seconds = 0;  // 0 without backward
  std::vector<StepTimings> schemes;
};

// Times the CPU block kernel (attention/dispatch.hpp) for every rank's every step of each scheme
// and for the whole sequence, sequentially on this thread; each timing the best of `repeats`.
StatusOr<EfficiencyInput> measure_host_steps(const AttentionProblem& problem, int ranks,
                                             bool backward, const std::vector<SchemeKind>& schemes,
                                             int repeats);

std::string efficiency_input_json(const EfficiencyInput& input);
StatusOr<EfficiencyInput> parse_efficiency_input(std::string_view json);

struct EfficiencyRow {
  SchemeKind scheme = SchemeKind::kZigzag;
  double measured = 0;
  double predicted = 0;
  double fed = 0;
  double error() const { return predicted / measured - 1; }  // relative error of the model
};

// `topology`: the links of the run for the fed figure (null: no communication, as virtual ranks
// sharing one device that time compute alone).
StatusOr<std::vector<EfficiencyRow>> compare_efficiency(const EfficiencyInput& input,
                                                        const ComputeRate& rate,
                                                        const KernelTiles& tiles,
                                                        const Topology* topology);

std::string efficiency_table(const EfficiencyInput& input, const std::vector<EfficiencyRow>& rows,
                             const ComputeRate& rate);

}  // namespace seqpar
