// Forward-only plans (PlanConfig::backward = false), every scheme on the threads backend: the
// workspace is smaller than the training plan's on every rank, forward still matches the fp64
// reference (and its communication formula), and backward fails on every rank with the rule
// named, without leaving any rank waiting.
#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <vector>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "harness/test_data.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

constexpr int kRanks = 4;

PlanConfig config_for(SchemeKind scheme, bool backward) {
  PlanConfig config;
  config.scheme = scheme;
  config.ulysses_degree = testing::grid_ulysses_degree(scheme, kRanks);  // hybrid: 2 x 2
  config.problem = AttentionProblem{1, kRanks * 32, 8, 2, 32, MaskKind::kCausal, DType::kF32, 0.0f};
  // Contiguous layouts get S % P != 0 (shards differ by a token; tree pads its gathers).
  if (plan_layout(config, kRanks).value().kind() == LayoutKind::kContiguous)
    config.problem.seq += 1;
  config.backward = backward;
  return config;
}

StepConfig options_for(SchemeKind scheme, bool backward) {
  StepConfig options;
  options.plan = config_for(scheme, true);  // run_training_step sets plan.backward itself
  options.backward = backward;
  options.check = true;
  options.warmup = 0;
  options.iters = 1;
  options.seed = 99;
  options.timeout_s = 60;
  return options;
}

class PlanForwardOnly : public ::testing::TestWithParam<SchemeKind> {};

TEST_P(PlanForwardOnly, WorkspaceIsSmallerAndForwardMatchesTheReference) {
  const SchemeKind scheme = GetParam();
  std::vector<StepReport> training, forward_only;
  ASSERT_NO_FATAL_FAILURE(
      testing::expect_checked_step_on_threads(options_for(scheme, true), kRanks, &training));
  ASSERT_NO_FATAL_FAILURE(
      testing::expect_checked_step_on_threads(options_for(scheme, false), kRanks, &forward_only));
  for (int r = 0; r < kRanks; ++r) {
    const size_t train_bytes = training[static_cast<size_t>(r)].workspace_bytes;
    const size_t forward_bytes = forward_only[static_cast<size_t>(r)].workspace_bytes;
    EXPECT_LT(forward_bytes, train_bytes) << scheme_name(scheme) << " rank " << r;
    std::printf("%-8s rank %d: workspace %zu B training, %zu B forward-only\n", scheme_name(scheme),
                r, train_bytes, forward_bytes);
  }
}

TEST_P(PlanForwardOnly, BackwardFailsOnEveryRankWithTheRule) {
  const SchemeKind scheme = GetParam();
  std::vector<Status> forward(kRanks, Status::ok()), backward(kRanks, Status::ok());
  std::vector<int> has_backward(kRanks, -1);
  // Every rank is done with forward (and its collectives) before any calls backward, whose
  // failure aborts the group: a rank still inside forward would otherwise see that abort.
  std::barrier forward_done(kRanks);
  const Status status = run_threads(kRanks, [&](Communicator& comm) -> Status {
    comm.set_timeout(std::chrono::seconds(60));  // a rank left waiting fails, not hangs
    const auto r = static_cast<size_t>(comm.rank());
    StatusOr<std::unique_ptr<Plan>> made = Plan::create(config_for(scheme, false), comm);
    if (!made.is_ok()) {
      forward_done.arrive_and_wait();
      return made.status();
    }
    std::unique_ptr<Plan> plan = std::move(made).value();
    has_backward[r] = plan->has_backward() ? 1 : 0;
    RankTensors t;
    if (Status s = t.allocate(plan->problem(), plan->local_seq()); !s.is_ok()) {
      forward_done.arrive_and_wait();
      return s;
    }
    const std::pair<InputTensor, HostBuffer*> inputs[] = {{InputTensor::kQ, &t.q},
                                                          {InputTensor::kK, &t.k},
                                                          {InputTensor::kV, &t.v},
                                                          {InputTensor::kDout, &t.dout}};
    for (const auto& [input, buffer] : inputs) {
      fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 5, input, buffer->data());
    }
    const ForwardArgs fwd{t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()};
    const BackwardArgs bwd{t.q.data(),    t.k.data(),  t.v.data(),  t.out.data(), t.lse.as<float>(),
                           t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data()};
    forward[r] = plan->forward(fwd);
    forward_done.arrive_and_wait();
    backward[r] = plan->backward(bwd);
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < kRanks; ++r) {
    const auto i = static_cast<size_t>(r);
    SCOPED_TRACE(str_cat(scheme_name(scheme), " rank ", r));
    EXPECT_EQ(has_backward[i], 0);
    EXPECT_TRUE(forward[i].is_ok()) << forward[i].to_string();
    // Every rank refuses on its own (none waits for a peer): its own kInvalidArgument, not a
    // peer's abort.
    EXPECT_EQ(backward[i].code(), StatusCode::kInvalidArgument) << backward[i].to_string();
    EXPECT_NE(backward[i].message().find(
                  "this plan was made forward-only (PlanConfig::backward = false)"),
              std::string::npos)
        << backward[i].to_string();
  }
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, PlanForwardOnly, ::testing::ValuesIn(all_schemes()),
                         [](const ::testing::TestParamInfo<SchemeKind>& param) {
                           return std::string(scheme_name(param.param));
                         });

}  // namespace
}  // namespace seqpar
