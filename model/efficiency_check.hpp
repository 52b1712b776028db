#pragma once
// The check of the cost model's compute part against measured per-step block-kernel times of the
// schemes whose steps give each rank at most one block of its shards (ring, striped, zigzag,
// LightSeq): "the model, fed with the measured per-step compute of the virtual-rank benchmark,
// predicts the measured efficiency of ring vs zigzag within 10%". The steps and blocks are the
// schemes' own schedules (runtime/schedule.hpp), as the cost model reads them.
//
// Efficiency of a scheme on P ranks = (one rank's time for the whole sequence / P) / the
// scheme's time. Three figures per scheme:
//   measured   from the measured per-step times in lock step (sum over steps of the slowest
//              rank), or the run's measured wall time when the input has one (a GPU run)
//   predicted  the model alone: kept tiles over the calibrated rate (model/schedule_cost.hpp),
//              for every step and for the whole sequence, in lock step
//   fed        the model fed with the measured per-step compute: the schedule's steps with each
//              computing step's slowest measured rank in place of the model's compute, and the
//              step's transfers on the topology (only differs from "measured" when the input has
//              a wall time or a topology is given)
// On a CPU host, measure_host_steps() times every rank's every step sequentially on one core
// (the CPU analogue of the GPU virtual-rank benchmark); on a GPU, measure_cuda_steps()
// (model/efficiency_cuda.hpp) does the same with the CUDA kernels. The same JSON
// (efficiency_input_json) carries either's per-step times into compare_efficiency() later.
//
// Steps are the computing steps of the scheme's forward schedule: the ring family runs P steps,
// rank r computing its queries against rank (r - s) mod P's K/V at step s; LightSeq runs its
// pairing's P/2 + 1 steps, each rank computing at most one pair (a helper's pair counts on the
// helper, idle ranks 0).
#include <string>
#include <string_view>
#include <vector>

#include "model/calibration.hpp"
#include "model/cost_model.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

struct StepTimings {
  SchemeKind scheme = SchemeKind::kZigzag;
  std::vector<std::vector<double>> forward_seconds;   // (steps, P ranks): rank r at step s
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
  // The block kernel's rate measured in the same run (the GPU benchmark: rate_from_blocks);
  // empty block_tokens: none (the caller supplies a rate).
  ComputeRate rate;
};

// One rank's block at one step: its queries are shard q_block's tokens, its keys and values
// shard kv_block's, in the scheme's layout (-1: idle this step). accumulate: merged into the
// running output, as the runtime does (every step after a rank's first own pair); the GPU
// benchmark runs such blocks as merges, the host timer times the block alone.
struct StepBlock {
  int q_block = -1;
  int kv_block = -1;
  bool accumulate = false;
  bool idle() const { return q_block < 0; }
};

// (steps, P) blocks of `scheme`'s forward schedule for `problem` on `ranks` ranks: ring, striped,
// zigzag P steps; lightseq P/2 + 1 steps (causal only, as its plan requires). A problem the plan
// refuses, or a schedule whose steps are not at most one block per rank of its own shards on all
// heads (ulysses, hybrid and tree on more than one rank), is refused.
StatusOr<std::vector<std::vector<StepBlock>>> scheme_step_blocks(SchemeKind scheme,
                                                                 const AttentionProblem& problem,
                                                                 int ranks);

// A rate from timed t x t blocks (positions 0..t-1 on both sides, the problem's mask): the
// model's FLOPs of each block (kept tiles of `tiles`; forward 4*B*Hq*D*work, backward 2.5x) over
// its measured time, so the model reproduces those blocks' times exactly. `tokens` ascending;
// without backward times (empty or 0) the backward rate is the forward one.
StatusOr<ComputeRate> rate_from_blocks(const AttentionProblem& problem, const KernelTiles& tiles,
                                       const std::vector<int64_t>& tokens,
                                       const std::vector<double>& forward_seconds,
                                       const std::vector<double>& backward_seconds,
                                       const std::string& device, const std::string& source);

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

// `topology`: the links of the run for the predicted and fed figures (null: no communication, as
// virtual ranks sharing one device that time compute alone): the schedule's transfers, the ring
// family's K/V shifts and dK/dV shares and LightSeq's inputs and results alike.
StatusOr<std::vector<EfficiencyRow>> compare_efficiency(const EfficiencyInput& input,
                                                        const ComputeRate& rate,
                                                        const KernelTiles& tiles,
                                                        const Topology* topology);

std::string efficiency_table(const EfficiencyInput& input, const std::vector<EfficiencyRow>& rows,
                             const ComputeRate& rate);

}  // namespace seqpar
