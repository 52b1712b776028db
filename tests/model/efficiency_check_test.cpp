// The efficiency harness (model/efficiency_check.hpp): the JSON a GPU virtual-rank benchmark
// will write, the round trip of the host measurement, and a small host measurement whose
// structure (causal ring unbalanced, zigzag balanced, LightSeq in between) must show; each
// scheme's step blocks, and the rate a GPU run derives from its own blocks.
#include "model/efficiency_check.hpp"

#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "model/mini_json.hpp"

namespace seqpar {
namespace {

ComputeRate flat_rate(double flops) {
  ComputeRate rate;
  rate.device = "test";
  rate.source = "test";
  rate.block_tokens = {64, 65536};
  rate.forward_flops_per_s = {flops, flops};
  rate.backward_flops_per_s = {flops, flops};
  return rate;
}

TEST(MiniJson, ParsesWhatTheHarnessWrites) {
  const StatusOr<JsonValue> v =
      parse_json(R"({"a": [1, 2.5, -3e2], "b": {"c": "x\"y"}, "t": true, "f": false, "n": null})");
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v.value().find("a")->items[2].number, -300.0);
  EXPECT_EQ(v.value().find("b")->find("c")->text, "x\"y");
  EXPECT_TRUE(v.value().find("t")->boolean);
  EXPECT_FALSE(v.value().find("f")->boolean);
  EXPECT_EQ(v.value().find("n")->kind, JsonValue::Kind::kNull);
  EXPECT_FALSE(parse_json("{\"a\": [1, 2}").is_ok());
  EXPECT_FALSE(parse_json("[1] x").is_ok());
}

// A GPU benchmark's file: per-step times and the run's wall time. Measured efficiency is the
// whole-sequence time / P over the wall time; fed is over the lock-step sum of the steps.
TEST(EfficiencyCheck, ReadsABenchmarksPerStepTimes) {
  const char* json = R"({"device": "NVIDIA H100", "ranks": 2,
    "problem": {"batch": 1, "seq": 1024, "heads": 4, "kv_heads": 1, "head_dim": 64,
                "mask": "causal", "dtype": "bf16"},
    "backward": false, "whole_forward_ms": 10.0,
    "schemes": [{"scheme": "ring", "measured_ms": 8.0, "forward_step_ms": [[2.5, 2.6], [0.1, 5.0]]},
                {"scheme": "zigzag", "forward_step_ms": [[2.5, 2.5], [2.6, 2.4]]}]})";
  const StatusOr<EfficiencyInput> in = parse_efficiency_input(json);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  EXPECT_EQ(in.value().problem.dtype, DType::kBF16);
  EXPECT_EQ(in.value().schemes[1].scheme, SchemeKind::kZigzag);
  const ComputeRate rate = flat_rate(1e12);
  const auto rows = compare_efficiency(in.value(), rate, KernelTiles{64, 64}, nullptr);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  EXPECT_DOUBLE_EQ(rows.value()[0].measured, 10.0 / 2 / 8.0);          // the wall time
  EXPECT_DOUBLE_EQ(rows.value()[0].fed, 10.0 / 2 / (2.6 + 5.0));       // lock step
  EXPECT_DOUBLE_EQ(rows.value()[1].measured, 10.0 / 2 / (2.5 + 2.6));  // no wall time
  // The model alone: zigzag on 2 ranks is balanced, contiguous ring is not.
  EXPECT_GT(rows.value()[1].predicted, 0.9);
  EXPECT_LT(rows.value()[0].predicted, 0.8);
  EXPECT_FALSE(parse_efficiency_input(R"({"ranks": 2, "problem": {}, "whole_forward_ms": 1,
      "schemes": [{"scheme": "ring", "forward_step_ms": [[1, 2, 3]]}]})")
                   .is_ok());
}

// A small host measurement: its JSON round trips, and the model shows the causal ring's imbalance
// (rank P-1 does 2P-1 half-blocks of work, rank 0 one; zigzag all P). The measured efficiencies
// are not asserted: on a shared 2-core CI machine running tests in parallel, one busy spell in
// the whole-sequence timing moved the causal ring's measured efficiency from its ideal 4/7 to
// 0.90 (2026-11-22). seqpar-model-check reports them on a quiet machine (docs/cost_model.md).
TEST(EfficiencyCheck, HostMeasurementShowsTheCausalImbalance) {
  const AttentionProblem p{1, 1024, 4, 1, 64, MaskKind::kCausal, DType::kF32, 0.0f};
  const StatusOr<EfficiencyInput> in =
      measure_host_steps(p, 4, true, {SchemeKind::kRing, SchemeKind::kZigzag}, 2);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  const StatusOr<EfficiencyInput> back = parse_efficiency_input(efficiency_input_json(in.value()));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back.value().schemes.size(), 2u);
  EXPECT_NEAR(back.value().schemes[1].backward_seconds[3][2],
              in.value().schemes[1].backward_seconds[3][2], 1e-9);
  const auto rows = compare_efficiency(back.value(), flat_rate(1e10), KernelTiles{64, 64}, nullptr);
  ASSERT_TRUE(rows.is_ok());
  const EfficiencyRow& ring = rows.value()[0];
  const EfficiencyRow& zigzag = rows.value()[1];
  EXPECT_GT(ring.measured, 0.0);
  EXPECT_GT(zigzag.measured, 0.0);
  EXPECT_NEAR(ring.predicted, 4.0 / 7.0, 0.05);  // rank 3: 7 half-blocks of the 4 ranks' 16
  EXPECT_GT(zigzag.predicted, ring.predicted * 1.2);
}

// Every (query shard, kv shard) pair the scheme must compute, exactly once, and at most one
// block per rank and step: all P^2 pairs for the ring family, the causal pairs (i >= j) in
// P/2 + 1 steps for LightSeq, a helper computing another rank's queries against its own K/V.
TEST(EfficiencyCheck, StepBlocksCoverEveryPairOnce) {
  for (int ranks = 1; ranks <= 9; ++ranks) {
    for (SchemeKind scheme : {SchemeKind::kRing, SchemeKind::kZigzag, SchemeKind::kLightSeq}) {
      const AttentionProblem p{1, 16 * ranks, 4, 1, 16, MaskKind::kCausal, DType::kF32, 0.0f};
      const auto steps = scheme_step_blocks(scheme, p, ranks);
      ASSERT_TRUE(steps.is_ok()) << steps.status().to_string();
      const bool lightseq = scheme == SchemeKind::kLightSeq;
      EXPECT_EQ(static_cast<int>(steps.value().size()), lightseq ? ranks / 2 + 1 : ranks);
      std::set<std::pair<int, int>> seen;
      for (size_t step = 0; step < steps.value().size(); ++step) {
        ASSERT_EQ(static_cast<int>(steps.value()[step].size()), ranks);
        for (int r = 0; r < ranks; ++r) {
          const StepBlock& b = steps.value()[step][static_cast<size_t>(r)];
          if (b.idle()) continue;
          EXPECT_TRUE(seen.insert({b.q_block, b.kv_block}).second)
              << scheme_name(scheme) << " P=" << ranks << ": pair computed twice";
          if (!lightseq) {
            EXPECT_EQ(b.q_block, r);
            EXPECT_EQ(b.accumulate, step > 0);
          } else {
            EXPECT_GE(b.q_block, b.kv_block);
            EXPECT_TRUE(b.q_block == r || b.kv_block == r);  // owner, or helper with own K/V
            EXPECT_EQ(b.accumulate, step > 0 && b.q_block == r);
          }
        }
      }
      EXPECT_EQ(seen.size(),
                static_cast<size_t>(lightseq ? ranks * (ranks + 1) / 2 : ranks * ranks));
    }
  }
  // LightSeq's plan refuses the full mask; Ulysses' steps are not one block of its own shards.
  const AttentionProblem full{1, 64, 4, 1, 16, MaskKind::kFull, DType::kF32, 0.0f};
  EXPECT_FALSE(scheme_step_blocks(SchemeKind::kLightSeq, full, 4).is_ok());
  const AttentionProblem causal{1, 64, 4, 1, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  EXPECT_FALSE(scheme_step_blocks(SchemeKind::kUlysses, causal, 4).is_ok());
  EXPECT_FALSE(scheme_step_blocks(SchemeKind::kTree, causal, 4).is_ok());
}

// LightSeq on the host: its P/2 + 1 steps with idle ranks at 0, the JSON round trip, and the
// efficiency between the causal ring's (4/7) and zigzag's (1): 4 ranks, 3 steps, the slowest
// rank does a diagonal and two full blocks (2.5 of the 2 blocks' worth per rank), 0.8.
TEST(EfficiencyCheck, HostMeasurementOfLightSeq) {
  const AttentionProblem p{1, 1024, 4, 1, 64, MaskKind::kCausal, DType::kF32, 0.0f};
  const StatusOr<EfficiencyInput> in =
      measure_host_steps(p, 4, true, {SchemeKind::kRing, SchemeKind::kLightSeq}, 2);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  const StepTimings& light = in.value().schemes[1];
  ASSERT_EQ(light.forward_seconds.size(), 3u);
  ASSERT_EQ(light.backward_seconds.size(), 3u);
  EXPECT_EQ(light.forward_seconds[2][0], 0.0);  // step 2 (P/2): ranks 0, 1 idle
  EXPECT_EQ(light.backward_seconds[2][1], 0.0);
  EXPECT_GT(light.forward_seconds[1][0], 0.0);  // step 1: rank 0 helps rank 3
  const StatusOr<EfficiencyInput> back = parse_efficiency_input(efficiency_input_json(in.value()));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_NEAR(back.value().schemes[1].forward_seconds[1][3], light.forward_seconds[1][3], 1e-9);
  const auto rows = compare_efficiency(back.value(), flat_rate(1e10), KernelTiles{64, 64}, nullptr);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  const EfficiencyRow& ring = rows.value()[0];
  const EfficiencyRow& lightseq = rows.value()[1];
  EXPECT_GT(lightseq.measured, 0.0);  // timings: not asserted in CI (see the test above)
  EXPECT_GT(lightseq.predicted, ring.predicted * 1.2);  // ideal 0.8 / 0.571 = 1.4
  EXPECT_LT(lightseq.predicted, 0.9);
  // A file whose lightseq has P steps, not P/2 + 1, is refused.
  std::string json = efficiency_input_json(in.value());
  EXPECT_FALSE(
      parse_efficiency_input(json.replace(json.rfind("\"lightseq\""), 10, "\"zigzag\"")).is_ok());
  // On a topology, the schedule's transfers (LightSeq's inputs and results, the ring's K/V and
  // dK/dV) cost time: a slow network lowers both predicted efficiencies.
  Topology topology = default_topology();
  topology.nodes = 4;
  topology.ranks_per_node = 1;
  topology.inter.bandwidth_bytes_per_s = 1e6;
  const auto slow =
      compare_efficiency(back.value(), flat_rate(1e10), KernelTiles{64, 64}, &topology);
  ASSERT_TRUE(slow.is_ok()) << slow.status().to_string();
  EXPECT_LT(slow.value()[0].predicted, 0.5 * ring.predicted);
  EXPECT_LT(slow.value()[1].predicted, 0.5 * lightseq.predicted);
}

// The rate a GPU run derives from its own t x t blocks: kept-tile FLOPs over the time, so the
// model predicts those blocks' times exactly; it travels in the JSON.
TEST(EfficiencyCheck, RateFromBlocksReproducesTheirTimes) {
  const AttentionProblem p{1, 2048, 8, 2, 128, MaskKind::kCausal, DType::kBF16, 0.0f};
  const KernelTiles gpu{64, 64, false};
  // Causal t x t blocks, 64 x 64 tiles: the model counts every computed tile whole, diagonal
  // ones too: 8 * 9 / 2 = 36 tiles of 512, 32 * 33 / 2 = 528 of 2048.
  const double work512 = 36 * 64.0 * 64;
  const double work2048 = 528 * 64.0 * 64;
  const double whole = work2048 / work512;  // the whole block's time at the 512 block's rate
  const StatusOr<ComputeRate> rate = rate_from_blocks(
      p, gpu, {512, 2048}, {1e-3, whole * 1e-3}, {2e-3, whole * 2e-3}, "test GPU", "test blocks");
  ASSERT_TRUE(rate.is_ok()) << rate.status().to_string();
  EXPECT_NEAR(rate.value().forward_flops_per_s[0], 4.0 * 8 * 128 * work512 / 1e-3, 1.0);
  EXPECT_NEAR(rate.value().backward_flops_per_s[0], 2.5 * 4.0 * 8 * 128 * work512 / 2e-3, 1.0);
  EXPECT_NEAR(rate.value().forward_flops_per_s[1] / rate.value().forward_flops_per_s[0], 1.0,
              1e-12);
  EXPECT_FALSE(rate_from_blocks(p, gpu, {512}, {0.0}, {}, "x", "y").is_ok());

  EfficiencyInput in;
  in.device = "test GPU \"quoted\"";
  in.problem = p;
  in.backward = true;
  in.ranks = 4;
  in.whole_forward_seconds = whole * 1e-3;
  in.whole_backward_seconds = whole * 2e-3;
  in.rate = rate.value();
  StepTimings zigzag;
  zigzag.scheme = SchemeKind::kZigzag;
  zigzag.forward_seconds.assign(4, std::vector<double>(4, whole / 16 * 1e-3));
  zigzag.backward_seconds.assign(4, std::vector<double>(4, whole / 16 * 2e-3));
  in.schemes.push_back(zigzag);
  const StatusOr<EfficiencyInput> back = parse_efficiency_input(efficiency_input_json(in));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back.value().device, in.device);
  ASSERT_EQ(back.value().rate.block_tokens.size(), 2u);
  EXPECT_NEAR(back.value().rate.backward_flops_per_s[1] / rate.value().backward_flops_per_s[1], 1.0,
              1e-8);
  const auto rows = compare_efficiency(back.value(), back.value().rate, gpu, nullptr);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  // Steps of a sixteenth of the whole each, four in lock step: measured efficiency 1; zigzag's
  // blocks are balanced and the rate is flat here, so the model says 1 too.
  EXPECT_NEAR(rows.value()[0].measured, 1.0, 1e-6);  // ms with 9 digits in the JSON
  EXPECT_NEAR(rows.value()[0].predicted, 1.0, 0.02);
}

}  // namespace
}  // namespace seqpar
