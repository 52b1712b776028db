// The efficiency harness (launch/efficiency_check.hpp): the JSON a GPU virtual-rank benchmark
// will write, the round trip of the host measurement, and a small host measurement whose
// structure (causal ring unbalanced, zigzag balanced) must show.
#include "launch/efficiency_check.hpp"

#include <gtest/gtest.h>

#include "launch/mini_json.hpp"

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

}  // namespace
}  // namespace seqpar
