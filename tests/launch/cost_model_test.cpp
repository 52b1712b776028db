// The cost model against the runtime it models: the bytes it moves step by step add up to the
// runtime's formulas (runtime/comm_formula.hpp) on every rank, its workspace estimate equals
// what Plan::create allocates, and the candidates it weighs are the ones the runtime accepts.
#include "launch/cost_model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "comm/threads_communicator.hpp"
#include "launch/candidates.hpp"
#include "launch/head_sharded_cost.hpp"
#include "launch/lightseq_cost.hpp"
#include "launch/ring_cost.hpp"
#include "launch/tree_cost.hpp"
#include "runtime/comm_formula.hpp"
#include "runtime/kv_cache.hpp"
#include "runtime/lightseq_schedule.hpp"
#include "runtime/plan.hpp"
#include "runtime/ring_decode.hpp"

namespace seqpar {
namespace {

// A CPU host of `ranks` ranks on `nodes` nodes, with a flat made-up rate (the byte and memory
// checks do not depend on it).
ModelInputs cpu_inputs(int nodes, int ranks_per_node, AttentionProblem p) {
  ModelInputs in;
  in.topology.nodes = nodes;
  in.topology.ranks_per_node = ranks_per_node;
  in.topology.device_name = "cpu";
  in.topology.intra = default_link(LinkKind::kHost);
  in.topology.inter = default_link(LinkKind::kEth100);
  in.topology.source = "test";
  in.rate.device = "test";
  in.rate.source = "test";
  in.rate.block_tokens = {64, 4096};
  in.rate.forward_flops_per_s = {1e10, 2e10};
  in.rate.backward_flops_per_s = {1e10, 2e10};
  in.problem = p;
  return in;
}

AttentionProblem problem(int64_t seq, int64_t hq, int64_t hkv, int64_t d, MaskKind mask,
                         DType dtype = DType::kF32) {
  return AttentionProblem{1, seq, hq, hkv, d, mask, dtype, 0.0f};
}

int64_t formula_max(SchemeKind scheme, const AttentionProblem& p, int ranks, int ulysses,
                    bool backward) {
  int64_t most = 0;
  for (int r = 0; r < ranks; ++r) {
    const CommVolume v = backward ? expected_backward_comm(scheme, p, ranks, r, ulysses)
                                  : expected_forward_comm(scheme, p, ranks, r, ulysses);
    most = std::max(most, v.bytes_sent);
  }
  return most;
}

TEST(CostModelBytes, RingEngineStepsAddUpToTheFormula) {
  for (SchemeKind scheme : {SchemeKind::kRing, SchemeKind::kStriped, SchemeKind::kZigzag}) {
    for (const auto& [seq, ranks] : std::vector<std::pair<int64_t, int>>{
             {1024, 4}, {1024, 8}, {1000, 3}, {4096, 16}, {960, 6}}) {
      const AttentionProblem p = problem(seq, 8, 2, 64, MaskKind::kCausal, DType::kBF16);
      StatusOr<Layout> layout = Layout::make(scheme_layout(scheme), seq, ranks);
      if (!layout.is_ok()) continue;  // striped and zigzag need even shards
      const ModelInputs in = cpu_inputs(1, ranks, p);
      RingCostInput ring{&in.topology,
                         ComputeModel{&in.rate, 1, 64},
                         KernelTiles{},
                         &layout.value(),
                         8,
                         2,
                         MaskKind::kCausal,
                         2,
                         {}};
      for (int r = 0; r < ranks; ++r) ring.members.push_back(r);
      const RingCost cost = ring_engine_cost(ring);
      SCOPED_TRACE(str_cat(scheme_name(scheme), " S=", seq, " P=", ranks));
      EXPECT_EQ(cost.forward_bytes_max, formula_max(scheme, p, ranks, 1, false));
      EXPECT_EQ(cost.backward_bytes_max, formula_max(scheme, p, ranks, 1, true));
      EXPECT_EQ(cost.forward.steps, ranks);
    }
  }
}

TEST(CostModelBytes, LightSeqStepsAddUpToTheFormulaOnEveryRank) {
  for (const auto& [seq, ranks] :
       std::vector<std::pair<int64_t, int>>{{1024, 4}, {1000, 5}, {2048, 8}, {999, 7}}) {
    const AttentionProblem p = problem(seq, 8, 2, 64, MaskKind::kCausal, DType::kBF16);
    const StatusOr<LightSeqCost> cost = lightseq_cost(cpu_inputs(1, ranks, p), KernelTiles{});
    ASSERT_TRUE(cost.is_ok()) << cost.status().to_string();
    for (int r = 0; r < ranks; ++r) {
      SCOPED_TRACE(str_cat("S=", seq, " P=", ranks, " rank ", r));
      EXPECT_EQ(cost.value().forward_bytes[static_cast<size_t>(r)],
                lightseq_forward_comm(p, ranks, r).bytes_sent);
      EXPECT_EQ(cost.value().backward_bytes[static_cast<size_t>(r)],
                lightseq_backward_comm(p, ranks, r).bytes_sent);
    }
  }
}

TEST(CostModelBytes, UlyssesAndHybridAllToAllsAddUpToTheFormula) {
  struct Case {
    int64_t seq, hq, hkv;
    int ranks, ulysses;  // ulysses 0: Ulysses over all ranks
  };
  for (const Case& c : std::vector<Case>{{1024, 8, 2, 4, 0},
                                         {1024, 16, 16, 8, 0},
                                         {1024, 8, 8, 4, 2},
                                         {2048, 8, 2, 8, 4},
                                         {1024, 4, 1, 4, 4}}) {
    const AttentionProblem p = problem(c.seq, c.hq, c.hkv, 64, MaskKind::kCausal, DType::kBF16);
    const ModelInputs in = cpu_inputs(1, c.ranks, p);
    const StatusOr<HeadShardedCost> cost = c.ulysses == 0
                                               ? ulysses_cost(in, KernelTiles{})
                                               : hybrid_cost(in, KernelTiles{}, c.ulysses);
    ASSERT_TRUE(cost.is_ok()) << cost.status().to_string();
    const SchemeKind scheme = c.ulysses == 0 ? SchemeKind::kUlysses : SchemeKind::kHybrid;
    SCOPED_TRACE(str_cat(scheme_name(scheme), " S=", c.seq, " P=", c.ranks, " U=", c.ulysses));
    EXPECT_EQ(cost.value().forward_bytes_max,
              formula_max(scheme, p, c.ranks, std::max(c.ulysses, 1), false));
    EXPECT_EQ(cost.value().backward_bytes_max,
              formula_max(scheme, p, c.ranks, std::max(c.ulysses, 1), true));
  }
}

// The busiest rank's bytes, with even shards and with S % P != 0 (shards 1025, 1025, 1025, 1024).
TEST(CostModelBytes, RingDecodeMatchesTheDecoder) {
  const int ranks = 4;
  for (const int64_t seq : {int64_t{4096}, int64_t{4099}}) {
    SCOPED_TRACE(str_cat("S = ", seq));
    const AttentionProblem p = problem(seq, 8, 2, 64, MaskKind::kCausal, DType::kBF16);
    std::mutex mutex;
    std::vector<int64_t> bytes(ranks);
    const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
      const KvCacheShape shape{1, 2, 64, DType::kBF16, seq, seq + 8};
      SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                              KvCache::create(shape, comm.rank(), ranks));
      SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodeAttention> ring,
                              RingDecode::create(comm, {1, 8, 64, 1, 0.125f}, shape));
      std::lock_guard<std::mutex> lock(mutex);
      bytes[static_cast<size_t>(comm.rank())] = ring->expected_comm(*cache).bytes_sent;
      return Status::ok();
    });
    ASSERT_TRUE(status.is_ok()) << status.to_string();
    EXPECT_EQ(ring_decode_bytes(p, ranks, seq), *std::max_element(bytes.begin(), bytes.end()));
  }
}

// The model's workspace per rank against Plan::workspace_bytes() of the runtime on the same
// problem (threads backend; CPU kernels, so their scratch counts): equal, byte for byte (the
// buffers of these problems are multiples of the arena's alignment). Every case as a
// training step and forward-only (prefill, and train without backward: PlanConfig::backward =
// false, no backward buffers), whose workspace is smaller in the model and in the plan.
TEST(CostModelMemory, WorkspaceEqualsWhatThePlanAllocates) {
  struct Case {
    SchemeKind scheme;
    int ranks, ulysses;
    int64_t seq, hq, hkv;
  };
  const std::vector<Case> cases = {
      {SchemeKind::kRing, 4, 1, 2048, 8, 2},     {SchemeKind::kZigzag, 4, 1, 2048, 8, 2},
      {SchemeKind::kStriped, 4, 1, 2048, 8, 2},  {SchemeKind::kLightSeq, 4, 1, 2048, 8, 2},
      {SchemeKind::kLightSeq, 5, 1, 2000, 8, 2}, {SchemeKind::kTree, 4, 1, 2048, 8, 2},
      {SchemeKind::kUlysses, 4, 4, 2048, 8, 2},  {SchemeKind::kUlysses, 4, 4, 2048, 4, 4},
      {SchemeKind::kHybrid, 4, 2, 2048, 8, 2},   {SchemeKind::kHybrid, 8, 4, 4096, 8, 8},
  };
  struct Step {
    Phase phase;
    bool backward;
  };
  for (const Case& c : cases) {
    const AttentionProblem p = problem(c.seq, c.hq, c.hkv, 64, MaskKind::kCausal);
    const Candidate candidate{c.scheme, c.ulysses, c.ranks / c.ulysses, Placement::kConsecutive};
    double training_model = 0, training_plan = 0;
    for (const Step& step :
         {Step{Phase::kTrain, true}, Step{Phase::kPrefill, false}, Step{Phase::kTrain, false}}) {
      ModelInputs in = cpu_inputs(1, c.ranks, p);
      in.phase = step.phase;
      in.backward = step.backward;
      const bool forward_only = !step.backward;
      const CandidateCost cost = evaluate_candidate(in, candidate);
      ASSERT_TRUE(cost.feasible) << candidate.name() << ": " << cost.excluded_reason;
      const PlanConfig config = plan_config_for(in, candidate);
      ASSERT_EQ(config.backward, !forward_only);
      std::mutex mutex;
      size_t most = 0;
      const Status status = run_threads(c.ranks, [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
        std::lock_guard<std::mutex> lock(mutex);
        most = std::max(most, plan->workspace_bytes());
        return Status::ok();
      });
      ASSERT_TRUE(status.is_ok()) << status.to_string();
      const double model = static_cast<double>(cost.workspace_bytes_per_rank);
      const double plan = static_cast<double>(most);
      const std::string what =
          str_cat(candidate.name(), " P=", c.ranks, " ", phase_name(step.phase),
                  step.backward ? " +backward" : "", forward_only ? " (forward-only)" : "");
      std::printf("workspace %-44s: model %.0f B, plan %.0f B, ratio %.4f\n", what.c_str(), model,
                  plan, model / plan);
      EXPECT_EQ(cost.workspace_bytes_per_rank, static_cast<int64_t>(most))
          << what << ": model " << model << " B, plan " << plan << " B";
      if (!forward_only) {
        training_model = model;
        training_plan = plan;
      } else {  // the backward buffers are gone from both
        EXPECT_LT(model, training_model) << what;
        EXPECT_LT(plan, training_plan) << what;
      }
    }
  }
}

// Every candidate the model lists as feasible is one the runtime accepts (Plan::create on the
// threads backend succeeds), and one it excludes for the runtime's reason fails there with it.
TEST(CostModelCandidates, TheRuntimeAgreesWithTheExclusions) {
  const int ranks = 6;
  for (const AttentionProblem& p :
       {problem(4092, 8, 2, 64, MaskKind::kCausal), problem(4090, 4, 2, 64, MaskKind::kFull)}) {
    const ModelInputs in = cpu_inputs(1, ranks, p);
    for (const CandidateCost& cost : evaluate_candidates(in)) {
      const PlanConfig config = plan_config_for(in, cost.candidate);
      const Status status = run_threads(
          ranks, [&](Communicator& comm) -> Status { return Plan::create(config, comm).status(); });
      SCOPED_TRACE(str_cat(cost.candidate.name(), " S=", p.seq, " ", mask_name(p.mask)));
      EXPECT_EQ(status.is_ok(), cost.feasible)
          << status.to_string() << " / " << cost.excluded_reason;
      if (!cost.feasible) {  // the runtime's own words
        EXPECT_NE(status.message().find(cost.excluded_reason), std::string::npos)
            << status.message() << " / " << cost.excluded_reason;
      }
    }
  }
}

}  // namespace
}  // namespace seqpar
