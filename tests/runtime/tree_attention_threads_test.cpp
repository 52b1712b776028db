// Tree attention on the threads backend, P in {1, 2, 3, 4, 6, 8}: forward and backward against
// the fp64 reference with asserted tolerances, communication against the formula, and the
// hierarchical combine (ranks_per_node) equal to the flat one with its own formula.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "harness/test_data.hpp"
#include "runtime/plan.hpp"
#include "scheme_cases.hpp"
#include "tree_cases.hpp"

namespace seqpar {
namespace {

using testing::TreeCase;

class TreeAttentionThreads : public ::testing::TestWithParam<std::tuple<TreeCase, int>> {};

TEST_P(TreeAttentionThreads, MatchesReferenceAndCommFormula) {
  const auto& [c, ranks] = GetParam();
  testing::expect_checked_step_on_threads(testing::tree_options_for(c, ranks), ranks);
}

INSTANTIATE_TEST_SUITE_P(AllRanks, TreeAttentionThreads,
                         ::testing::Combine(::testing::ValuesIn(testing::tree_cases()),
                                            ::testing::Values(1, 2, 3, 4, 6, 8)),
                         [](const ::testing::TestParamInfo<std::tuple<TreeCase, int>>& param_info) {
                           return str_cat(std::get<0>(param_info.param).name(), "_P",
                                          std::get<1>(param_info.param));
                         });

// Through a Plan with ranks_per_node: the checked step passes, and every rank's traffic over the
// world and its node and cross communicators equals the hierarchical formula.
TEST(TreeAttentionThreads, HierarchicalPlanMatchesReferenceAndCommFormula) {
  for (const auto& [ranks, per_node] : {std::pair{4, 2}, std::pair{6, 3}, std::pair{8, 4}}) {
    SCOPED_TRACE(str_cat("P=", ranks, " ranks_per_node=", per_node));
    StepConfig options = testing::tree_options_for(testing::tree_cases().front(), ranks);
    options.plan.ranks_per_node = per_node;
    std::vector<StepReport> reports;
    ASSERT_NO_FATAL_FAILURE(testing::expect_checked_step_on_threads(options, ranks, &reports));
    EXPECT_GT(reports[0].measured_comm[CommOp::kReduceScatter], 1);  // the node level ran
  }
}

// The formula by hand: B=1, S=64 over P=4 (16 per rank), Hq=4, Hkv=2, D=8, fp32.
TEST(TreeCommFormula, MatchesHandCount) {
  const AttentionProblem p{1, 64, 4, 2, 8, MaskKind::kCausal, DType::kF32, 0.0f};
  const int64_t q = 16 * 4 * 8, s = 4 * 16;  // one rank's query elements and LSE rows
  const oracle::Shape flat{p, 4}, tiered{p, 4, 1, 2}, one{p, 1};
  // The schedule and the oracle, each against the hand count (rank 0).
  for (const bool from_schedule : {true, false}) {
    SCOPED_TRACE(from_schedule ? "schedule" : "oracle");
    auto fwd = [&](const oracle::Shape& shape) {
      return from_schedule ? testing::schedule_comm(SchemeKind::kTree, shape, Pass::kForward)[0]
                           : oracle::forward(SchemeKind::kTree, shape, 0);
    };
    const CommVolume f = fwd(flat);
    EXPECT_EQ(f[CommOp::kAllGather], 1);
    EXPECT_EQ(f[CommOp::kAllReduce], 2);
    EXPECT_EQ(f.bytes_sent, 3 * q * 4 + 4 * s * 4 + 4 * (q + s) * 4);
    const CommVolume b = from_schedule
                             ? testing::schedule_comm(SchemeKind::kTree, flat, Pass::kBackward)[0]
                             : oracle::backward(SchemeKind::kTree, flat, 0);
    EXPECT_EQ(b[CommOp::kAllGather], 1);
    EXPECT_EQ(b[CommOp::kReduceScatter], 1);
    EXPECT_EQ(b.bytes_sent, 3 * (2 * s * 4 + 2 * q * 4) + 3 * q * 4);
    // Two nodes of 2: per all-reduce of n values, slices of n/2: (1 + 1 + 1) * n/2 * 4 bytes.
    const CommVolume h = fwd(tiered);
    EXPECT_EQ(h[CommOp::kAllReduce], 2);
    EXPECT_EQ(h[CommOp::kReduceScatter], 2);
    EXPECT_EQ(h[CommOp::kAllGather], 3);
    EXPECT_EQ(h.bytes_sent, 3 * q * 4 + 3 * (4 * s / 2) * 4 + 3 * (4 * (q + s) / 2) * 4);
    EXPECT_EQ(fwd(one).bytes_sent, 0);
  }
}

// Largest |a - b| over n values in `dtype`.
double max_diff(const void* a, const void* b, DType dtype, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    m = std::fmax(m, std::fabs(load_float(a, dtype, i) - load_float(b, dtype, i)));
  }
  return m;
}

struct HierarchyCase {
  int ranks, ranks_per_node;
  MaskKind mask;
};

class TreeHierarchy : public ::testing::TestWithParam<HierarchyCase> {};

// Forward + backward with the node hierarchy equal the flat results (up to fp32 summation order),
// and the traffic over the world, node and cross communicators is the hierarchical formula.
TEST_P(TreeHierarchy, EqualsFlatAndMatchesFormula) {
  const HierarchyCase hc = GetParam();
  AttentionProblem p{2, hc.ranks * 11, 8, 2, 16, hc.mask, DType::kF32, 0.25f};
  const Status status = run_threads(hc.ranks, [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(Layout layout, Layout::make(LayoutKind::kContiguous, p.seq, hc.ranks));
    RankTensors flat, tiered;
    SEQPAR_RETURN_IF_ERROR(flat.allocate(p, layout.local_seq(comm.rank())));
    SEQPAR_RETURN_IF_ERROR(tiered.allocate(p, layout.local_seq(comm.rank())));
    for (RankTensors* t : {&flat, &tiered}) {
      const std::pair<InputTensor, HostBuffer*> inputs[] = {{InputTensor::kQ, &t->q},
                                                            {InputTensor::kK, &t->k},
                                                            {InputTensor::kV, &t->v},
                                                            {InputTensor::kDout, &t->dout}};
      for (const auto& [input, buffer] : inputs) {
        fill_input_shard(p, layout, comm.rank(), 11, input, buffer->data());
      }
    }
    for (int tier = 0; tier < 2; ++tier) {
      RankTensors& t = tier == 0 ? flat : tiered;
      PlanConfig config;
      config.problem = p;
      config.scheme = SchemeKind::kTree;
      config.ranks_per_node = tier == 0 ? 0 : hc.ranks_per_node;
      SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
      plan->reset_comm_stats();
      SEQPAR_RETURN_IF_ERROR(
          plan->forward({t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()}));
      // This rank's traffic over the world and, when tiered, its node and cross communicators.
      const CommStats stats = plan->comm_stats();
      CommVolume sent;
      for (size_t op = 0; op < sent.calls.size(); ++op) sent.calls[op] = stats.ops[op].calls;
      sent.bytes_sent = stats.total_bytes_sent();
      EXPECT_EQ(sent[CommOp::kReduceScatter], tier == 1 ? 2 : 0);  // the node level ran
      const oracle::Shape shape{p, hc.ranks, 1, config.ranks_per_node};
      const CommVolume want = oracle::forward(SchemeKind::kTree, shape, comm.rank());
      EXPECT_EQ(sent.calls, want.calls) << "rank " << comm.rank() << " tier " << tier;
      EXPECT_EQ(sent.bytes_sent, want.bytes_sent) << "rank " << comm.rank() << " tier " << tier;
      EXPECT_EQ(plan->expected_forward_comm(), want) << "rank " << comm.rank() << " tier " << tier;
      SEQPAR_RETURN_IF_ERROR(
          plan->backward({t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>(),
                          t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data()}));
    }
    const size_t q_elems = flat.q.bytes() / sizeof(float),
                 kv_elems = flat.k.bytes() / sizeof(float);
    EXPECT_LE(max_diff(flat.out.data(), tiered.out.data(), p.dtype, q_elems), 1e-6);
    EXPECT_LE(
        max_diff(flat.lse.data(), tiered.lse.data(), DType::kF32, flat.lse.bytes() / sizeof(float)),
        1e-5);
    EXPECT_LE(max_diff(flat.dq.data(), tiered.dq.data(), p.dtype, q_elems), 1e-6);
    EXPECT_LE(max_diff(flat.dk.data(), tiered.dk.data(), p.dtype, kv_elems), 1e-6);
    EXPECT_LE(max_diff(flat.dv.data(), tiered.dv.data(), p.dtype, kv_elems), 1e-6);
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
}

INSTANTIATE_TEST_SUITE_P(Nodes, TreeHierarchy,
                         ::testing::Values(HierarchyCase{4, 2, MaskKind::kCausal},
                                           HierarchyCase{6, 2, MaskKind::kCausal},
                                           HierarchyCase{6, 3, MaskKind::kFull},
                                           HierarchyCase{8, 4, MaskKind::kCausal}),
                         [](const ::testing::TestParamInfo<HierarchyCase>& param_info) {
                           return str_cat("P", param_info.param.ranks, "_R",
                                          param_info.param.ranks_per_node, "_",
                                          mask_name(param_info.param.mask));
                         });

}  // namespace
}  // namespace seqpar
