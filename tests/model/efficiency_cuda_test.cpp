// The GPU virtual-rank benchmark (model/efficiency_cuda.hpp) on a small problem: 4 virtual
// ranks, S = 16384, 8 q / 2 kv heads, d128, causal, bf16, forward + backward. Every busy block
// has a positive finite time, idle LightSeq ranks 0, the run's rate is positive, the JSON round
// trips, and the causal imbalance shows: zigzag's measured efficiency well above ring's (ideal
// 1 vs 4/7), LightSeq's above ring's (ideal 0.8). Skips without a CUDA device; without one,
// measure_cuda_steps must say so.
#include <gtest/gtest.h>

#ifdef SEQPAR_HAVE_CUDA
#include <cmath>
#include <cstdio>

#include "core/device_buffer.hpp"
#include "model/efficiency_cuda.hpp"

namespace seqpar {
namespace {

const AttentionProblem kProblem{1, 16384, 8, 2, 128, MaskKind::kCausal, DType::kBF16, 0.0f};

TEST(EfficiencyCuda, NoDeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible";
  const auto in = measure_cuda_steps(kProblem, 4, true, {SchemeKind::kRing}, CudaStepOptions{});
  ASSERT_FALSE(in.is_ok());
  EXPECT_EQ(in.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(in.status().message().find("no CUDA device"), std::string::npos);
}

TEST(EfficiencyCuda, VirtualRanksShowTheCausalImbalance) {
#ifdef SEQPAR_CUDA_EMULATION
  GTEST_SKIP() << "a timing benchmark: the emulator's times are the CPU's (EmulatedStepsHaveTheir"
                  "Shape checks the same run's structure; the GPU round runs this one)";
#endif
  if (cuda_device_count() == 0) {
    GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none)";
  }
  CudaStepOptions options;
  options.warmup = 1;
  options.repeats = 3;
  options.progress = false;
  const std::vector<SchemeKind> schemes = {SchemeKind::kRing, SchemeKind::kStriped,
                                           SchemeKind::kZigzag, SchemeKind::kLightSeq};
  const StatusOr<EfficiencyInput> in = measure_cuda_steps(kProblem, 4, true, schemes, options);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  EXPECT_GT(in.value().whole_forward_seconds, 0.0);
  EXPECT_GT(in.value().whole_backward_seconds, 0.0);
  ASSERT_EQ(in.value().rate.block_tokens.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_GT(in.value().rate.forward_flops_per_s[i], 1e12) << "under 1 TFLOP/s";
    EXPECT_GT(in.value().rate.backward_flops_per_s[i], 1e12) << "under 1 TFLOP/s";
  }
  ASSERT_EQ(in.value().schemes.size(), schemes.size());
  for (const StepTimings& t : in.value().schemes) {
    const auto blocks = scheme_step_blocks(t.scheme, kProblem, 4);
    ASSERT_TRUE(blocks.is_ok());
    ASSERT_EQ(t.forward_seconds.size(), blocks.value().size());
    ASSERT_EQ(t.backward_seconds.size(), blocks.value().size());
    for (size_t s = 0; s < blocks.value().size(); ++s) {
      for (size_t r = 0; r < 4; ++r) {
        const bool idle = blocks.value()[s][r].idle();
        for (double x : {t.forward_seconds[s][r], t.backward_seconds[s][r]}) {
          EXPECT_TRUE(std::isfinite(x));
          if (idle) {
            EXPECT_EQ(x, 0.0) << scheme_name(t.scheme) << " step " << s << " rank " << r;
          } else {
            EXPECT_GT(x, 0.0) << scheme_name(t.scheme) << " step " << s << " rank " << r;
          }
        }
      }
    }
  }
  const StatusOr<EfficiencyInput> back = parse_efficiency_input(efficiency_input_json(in.value()));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  const auto rows = compare_efficiency(back.value(), back.value().rate,
                                       kernel_tiles_for(back.value().device), nullptr);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  for (const EfficiencyRow& row : rows.value()) {
    EXPECT_GT(row.measured, 0.1) << scheme_name(row.scheme);
    EXPECT_LT(row.measured, 1.5) << scheme_name(row.scheme);
    EXPECT_GT(row.predicted, 0.1) << scheme_name(row.scheme);
  }
  const EfficiencyRow& ring = rows.value()[0];
  const EfficiencyRow& zigzag = rows.value()[2];
  const EfficiencyRow& lightseq = rows.value()[3];
  EXPECT_GT(zigzag.measured, ring.measured * 1.2);
  EXPECT_GT(lightseq.measured, ring.measured);
  std::printf("%s", efficiency_table(back.value(), rows.value(), back.value().rate).c_str());
}

#ifdef SEQPAR_CUDA_EMULATION
// The same benchmark on the emulated GPU, small: every scheme's every step has a time where it
// has a block and none where it is idle, and the JSON round trips (no speed is asserted).
TEST(EfficiencyCuda, EmulatedStepsHaveTheirShape) {
  const AttentionProblem small{1, 512, 2, 1, 64, MaskKind::kCausal, DType::kBF16, 0.0f};
  CudaStepOptions options;
  options.warmup = 0;
  options.repeats = 1;
  options.progress = false;
  const std::vector<SchemeKind> schemes = {SchemeKind::kRing, SchemeKind::kLightSeq};
  const StatusOr<EfficiencyInput> in = measure_cuda_steps(small, 2, true, schemes, options);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  ASSERT_EQ(in.value().schemes.size(), schemes.size());
  for (const StepTimings& t : in.value().schemes) {
    const auto blocks = scheme_step_blocks(t.scheme, small, 2);
    ASSERT_TRUE(blocks.is_ok());
    ASSERT_EQ(t.forward_seconds.size(), blocks.value().size());
    for (size_t s = 0; s < blocks.value().size(); ++s) {
      for (size_t r = 0; r < 2; ++r) {
        const double x = t.forward_seconds[s][r];
        EXPECT_TRUE(blocks.value()[s][r].idle() ? x == 0.0 : x > 0.0)
            << scheme_name(t.scheme) << " step " << s << " rank " << r << ": " << x;
      }
    }
  }
  const StatusOr<EfficiencyInput> back = parse_efficiency_input(efficiency_input_json(in.value()));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back.value().schemes.size(), schemes.size());
}
#endif

}  // namespace
}  // namespace seqpar

#else  // no CUDA toolkit in this build

TEST(EfficiencyCuda, SkippedWithoutCudaToolkit) {
  GTEST_SKIP() << "built without the CUDA toolkit (SEQPAR_HAVE_CUDA off): no GPU benchmark";
}

#endif
