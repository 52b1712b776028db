// The cost model against the runtime it models. It has no per-scheme code: it reads each
// scheme's schedule and workspace from the registry, so these tests hold what it reads to
// things written apart from it: the closed-form oracles (bytes), Plan::workspace_bytes() and
// DecodePlan::workspace_bytes() of real plans (memory), a hand computation (the step rule), and
// the runtime's own verdicts (exclusions).
#include "model/cost_model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <mutex>

#include "comm/threads/threads_communicator.hpp"
#include "comm_oracles.hpp"
#include "model/candidates.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

// A CPU host of `ranks_per_node` ranks on each of `nodes` nodes, with a flat made-up rate (the
// byte and memory checks do not depend on it).
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

// The largest of `bytes_of(comm)` over `ranks` threads (each rank makes its plan).
size_t largest_over_ranks(int ranks,
                          const std::function<StatusOr<size_t>(Communicator&)>& bytes_of) {
  std::mutex mutex;
  size_t most = 0;
  const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(const size_t bytes, bytes_of(comm));
    std::lock_guard<std::mutex> lock(mutex);
    most = std::max(most, bytes);
    return Status::ok();
  });
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  return most;
}

// The busiest rank's bytes per layer by the oracles, for a training or prefill candidate.
int64_t oracle_bytes(const ModelInputs& in, const Candidate& c) {
  const PlanConfig config = plan_config_for(in, c);
  const int ranks = in.topology.ranks();
  const oracle::Shape shape{in.problem, ranks, c.ulysses_degree, config.ranks_per_node};
  int64_t most = 0;
  for (int r = 0; r < ranks; ++r) {
    int64_t bytes = oracle::forward(c.scheme, shape, r).bytes_sent;
    if (config.backward) bytes += oracle::backward(c.scheme, shape, r).bytes_sent;
    most = std::max(most, bytes);
  }
  return most;
}

// Every feasible candidate, on one node and on two, training and prefill: the bytes the model
// charges are the oracles' (the model reads them off the schedules).
TEST(CostModelBytes, EveryCandidateSendsWhatTheOraclesSay) {
  for (const auto& [nodes, per_node] : {std::pair{1, 4}, std::pair{2, 3}, std::pair{2, 4}}) {
    for (const AttentionProblem& p :
         {problem(1032, 8, 2, 64, MaskKind::kCausal, DType::kBF16),
          problem(1000, 12, 3, 32, MaskKind::kFull), problem(4096, 8, 8, 64, MaskKind::kCausal)}) {
      for (const Phase phase : {Phase::kTrain, Phase::kPrefill}) {
        ModelInputs in = cpu_inputs(nodes, per_node, p);
        in.phase = phase;
        int feasible = 0;
        for (const CandidateCost& cost : evaluate_candidates(in)) {
          if (!cost.feasible) continue;
          ++feasible;
          SCOPED_TRACE(str_cat(cost.candidate.name(), " on ", nodes, " x ", per_node, " S=", p.seq,
                               " ", phase_name(phase)));
          EXPECT_EQ(cost.bytes_sent_per_rank, oracle_bytes(in, cost.candidate));
        }
        EXPECT_GE(feasible, 4);
      }
    }
  }
}

// Decoding's first step (the prompt's cache and q_len = 2 new tokens, as DecodePlan runs it):
// tree's combine and the ring's hops; the model reports the largest rank's bytes.
TEST(CostModelBytes, DecodersSendWhatTheOraclesSay) {
  for (const int64_t seq : {int64_t{4096}, int64_t{4099}}) {
    ModelInputs in = cpu_inputs(2, 3, problem(seq, 8, 2, 64, MaskKind::kCausal, DType::kBF16));
    in.phase = Phase::kDecode;
    in.q_len = 2;
    for (const CandidateCost& cost : evaluate_candidates(in)) {
      ASSERT_TRUE(cost.feasible) << cost.candidate.name() << ": " << cost.excluded_reason;
      const oracle::Shape shape{in.problem, 6, 1, 3};
      int64_t most = 0;
      for (int r = 0; r < 6; ++r) {
        most = std::max(
            most, oracle::decode_step(cost.candidate.decoder, shape, 2, seq + 2, r).bytes_sent);
      }
      EXPECT_EQ(cost.bytes_sent_per_rank, most) << cost.candidate.name() << " S=" << seq;
    }
  }
}

// The step rule by hand. Ring on 2 ranks on 2 nodes, one 64-token tile per block (S = 128,
// Hq = Hkv = 1, D = 64, fp32, causal), a flat 1e10 FLOP/s: a block is 4 * 64 * 64 * 64 FLOPs =
// 1.048576e-4 s (the diagonal block's one tile is computed whole). Forward step 0: both ranks
// their diagonal while K, V (2 * 64 * 64 * 4 = 32768 bytes) cross the network; step 1: rank 1
// its full block 0, rank 0's block 1 is skipped entirely; no transfer.
TEST(CostModelSteps, RingForwardByHand) {
  ModelInputs in = cpu_inputs(2, 1, problem(128, 1, 1, 64, MaskKind::kCausal));
  in.rate.block_tokens = {64};
  in.rate.forward_flops_per_s = {1e10};
  in.rate.backward_flops_per_s = {1e10};
  const double block = 4.0 * 64 * 64 * 64 / 1e10;
  for (const double bandwidth : {1e9, 1e8}) {
    in.topology.inter.bandwidth_bytes_per_s = bandwidth;
    in.topology.inter.latency_s = 1e-5;
    in.phase = Phase::kPrefill;
    const CandidateCost cost = evaluate_candidate(in, {SchemeKind::kRing, 1, 2});
    ASSERT_TRUE(cost.feasible) << cost.excluded_reason;
    const double comm = 32768 / bandwidth + 1e-5;
    EXPECT_EQ(cost.forward.steps, 2);
    EXPECT_NEAR(cost.forward.seconds, std::max(block, comm) + block, 1e-12) << bandwidth;
    EXPECT_NEAR(cost.forward.compute_seconds, 2 * block, 1e-12);
    EXPECT_NEAR(cost.forward.comm_seconds, comm, 1e-12);
  }
}

// Steps as the schemes run them: the ring family P forward steps and P + 1 backward (the last
// dK, dV share waits after the loop); Ulysses an all-to-all, one block, an all-to-all.
TEST(CostModelSteps, EachSchemesStepsAreItsSchedules) {
  for (const int ranks : {2, 4, 6}) {
    const ModelInputs in = cpu_inputs(1, ranks, problem(96 * ranks, 8, 2, 32, MaskKind::kCausal));
    for (const CandidateCost& cost : evaluate_candidates(in)) {
      if (!cost.feasible) continue;
      SCOPED_TRACE(str_cat(cost.candidate.name(), " P=", ranks));
      const int forward = cost.forward.steps, backward = cost.forward_backward.steps - forward;
      switch (cost.candidate.scheme) {
        case SchemeKind::kRing:
        case SchemeKind::kStriped:
        case SchemeKind::kZigzag:
          EXPECT_EQ(forward, ranks);
          EXPECT_EQ(backward, ranks + 1);
          break;
        case SchemeKind::kUlysses:
          EXPECT_EQ(forward, 3);
          EXPECT_EQ(backward, 3);
          break;
        default:
          EXPECT_GT(forward, 0);
          EXPECT_GT(backward, 0);
      }
    }
  }
}

// The model's workspace per rank against Plan::workspace_bytes() of the runtime on the same
// problem (threads backend; CPU kernels, so their scratch counts): equal, byte for byte, for
// every registered scheme and each of its grids, as a training step and forward-only (prefill,
// and train without backward: PlanConfig::backward = false, no backward buffers), whose
// workspace is smaller in the model and in the plan. Uneven shards included.
TEST(CostModelMemory, WorkspaceEqualsWhatThePlanAllocates) {
  struct Step {
    Phase phase;
    bool backward;
  };
  for (const auto& [ranks, seq] :
       {std::pair{4, int64_t{2048}}, std::pair{5, int64_t{2000}}, std::pair{4, int64_t{1030}}}) {
    const AttentionProblem p = problem(seq, 8, 2, 64, MaskKind::kCausal);
    for (const Candidate& candidate : enumerate_candidates(cpu_inputs(1, ranks, p))) {
      double training_model = 0, training_plan = 0;
      for (const Step& step :
           {Step{Phase::kTrain, true}, Step{Phase::kPrefill, false}, Step{Phase::kTrain, false}}) {
        ModelInputs in = cpu_inputs(1, ranks, p);
        in.phase = step.phase;
        in.backward = step.backward;
        const CandidateCost cost = evaluate_candidate(in, candidate);
        if (!cost.feasible) break;  // a grid or layout this problem does not allow
        const PlanConfig config = plan_config_for(in, candidate);
        ASSERT_EQ(config.backward, step.backward);
        const size_t most = largest_over_ranks(ranks, [&](Communicator& comm) -> StatusOr<size_t> {
          SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
          return plan->workspace_bytes();
        });
        const double model = static_cast<double>(cost.workspace_bytes_per_rank);
        const double plan = static_cast<double>(most);
        const std::string what = str_cat(candidate.name(), " P=", ranks, " S=", seq, " ",
                                         phase_name(step.phase), step.backward ? " +backward" : "");
        std::printf("workspace %-40s: model %.0f B, plan %.0f B\n", what.c_str(), model, plan);
        EXPECT_EQ(cost.workspace_bytes_per_rank, static_cast<int64_t>(most)) << what;
        if (step.backward) {
          training_model = model;
          training_plan = plan;
        } else {  // the backward buffers are gone from both
          EXPECT_LT(model, training_model) << what;
          EXPECT_LT(plan, training_plan) << what;
        }
      }
    }
  }
}

// A decoding candidate's workspace is its DecodePlan's (the cache counts as the rank's shards).
TEST(CostModelMemory, DecodeWorkspaceEqualsWhatTheDecodePlanAllocates) {
  for (const int ranks : {3, 4}) {
    ModelInputs in = cpu_inputs(1, ranks, problem(1001, 8, 2, 64, MaskKind::kCausal));
    in.phase = Phase::kDecode;
    in.q_len = 3;
    for (const CandidateCost& cost : evaluate_candidates(in)) {
      ASSERT_TRUE(cost.feasible) << cost.excluded_reason;
      const DecodeConfig config = decode_config_for(in, cost.candidate);
      const size_t most = largest_over_ranks(ranks, [&](Communicator& comm) -> StatusOr<size_t> {
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan, DecodePlan::create(config, comm));
        return plan->workspace_bytes();
      });
      EXPECT_EQ(cost.workspace_bytes_per_rank, static_cast<int64_t>(most))
          << cost.candidate.name() << " P=" << ranks;
      EXPECT_GT(cost.memory_bytes_per_rank, cost.workspace_bytes_per_rank);  // + the cache
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

// Every registered scheme is a candidate (the hybrid once per grid), in registration order.
TEST(CostModelCandidates, EveryRegisteredSchemeIsWeighed) {
  const ModelInputs in = cpu_inputs(2, 4, problem(4096, 8, 2, 64, MaskKind::kCausal));
  const std::vector<Candidate> candidates = enumerate_candidates(in);
  size_t next = 0;
  for (const SchemeKind scheme : all_schemes()) {
    for (const int u : scheme_descriptor(scheme).candidate_degrees(8)) {
      ASSERT_LT(next, candidates.size());
      EXPECT_EQ(candidates[next].scheme, scheme);
      EXPECT_EQ(candidates[next].ulysses_degree, u);
      ++next;
    }
  }
  EXPECT_EQ(next, candidates.size());
}

}  // namespace
}  // namespace seqpar
