// Compute-rate calibration: interpolation, the documented H100 figures, a short measurement of
// the host block kernel, the cache round trip (load, re-measure, damaged file), and link
// measurement over the threads backend.
#include "model/calibration.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "comm/threads/threads_communicator.hpp"

namespace seqpar {
namespace {

ComputeRate two_point_rate() {
  ComputeRate r;
  r.device = "test";
  r.source = "test";
  r.block_tokens = {100, 10000};
  r.forward_flops_per_s = {1e12, 3e12};
  r.backward_flops_per_s = {2e12, 2e12};
  return r;
}

TEST(ComputeRate, InterpolatesLogLinearAndClamps) {
  const ComputeRate r = two_point_rate();
  EXPECT_DOUBLE_EQ(r.forward_at(100), 1e12);
  EXPECT_DOUBLE_EQ(r.forward_at(10000), 3e12);
  EXPECT_NEAR(r.forward_at(1000), 2e12, 1e3);     // halfway in log(tokens)
  EXPECT_DOUBLE_EQ(r.forward_at(1), 1e12);        // clamped below
  EXPECT_DOUBLE_EQ(r.forward_at(1 << 30), 3e12);  // and above
  EXPECT_DOUBLE_EQ(r.backward_at(555), 2e12);
  ComputeRate three = r;
  three.block_tokens = {10, 100, 1000};
  three.forward_flops_per_s = {1, 5, 2};
  three.backward_flops_per_s = {1, 1, 1};
  // 32 tokens: (log 32 - log 10) / (log 100 - log 10) of the way from 1 to 5.
  EXPECT_NEAR(three.forward_at(32), 1.0 + 4.0 * std::log(3.2) / std::log(10.0), 1e-12);
  // 316 tokens: between 5 (at 100) and 2 (at 1000).
  EXPECT_NEAR(three.forward_at(316), 5.0 - 3.0 * std::log(3.16) / std::log(10.0), 1e-12);
}

TEST(ComputeRate, ValidationNamesTheRule) {
  ComputeRate r = two_point_rate();
  EXPECT_TRUE(validate_compute_rate(r).is_ok());
  r.block_tokens = {100, 50};
  EXPECT_FALSE(validate_compute_rate(r).is_ok());
  r = two_point_rate();
  r.backward_flops_per_s.pop_back();
  EXPECT_FALSE(validate_compute_rate(r).is_ok());
  r = two_point_rate();
  r.forward_flops_per_s[0] = 0;
  EXPECT_FALSE(validate_compute_rate(r).is_ok());
}

TEST(ComputeRate, DefaultH100IsThePublishedFlashAttention2Column) {
  const ComputeRate d128 = default_h100_rate(128);
  EXPECT_DOUBLE_EQ(d128.forward_at(512), 309e12);
  EXPECT_DOUBLE_EQ(d128.forward_at(16384), 370e12);
  EXPECT_DOUBLE_EQ(d128.backward_at(16384), 322e12);
  EXPECT_NE(d128.source.find("published, not measured here"), std::string::npos);
  const ComputeRate d64 = default_h100_rate(64);
  EXPECT_DOUBLE_EQ(d64.forward_at(512), 282e12);
  EXPECT_DOUBLE_EQ(d64.backward_at(512), 198e12);
}

CalibrationOptions quick_options(const std::string& cache_dir) {
  CalibrationOptions o;
  o.head_dim = 32;
  o.dtype = DType::kF32;
  o.heads_q = 2;
  o.heads_kv = 1;
  o.block_tokens = {32, 64};
  o.min_seconds = 0.005;
  o.cache_dir = cache_dir;
  return o;
}

TEST(Calibration, MeasuresTheHostKernel) {
  StatusOr<ComputeRate> rate = calibrate_host_rate(quick_options(""));
  ASSERT_TRUE(rate.is_ok()) << rate.status().to_string();
  ASSERT_EQ(rate->block_tokens, (std::vector<int64_t>{32, 64}));
  for (size_t i = 0; i < 2; ++i) {
    // Any CPU core does more than 10 MFLOP/s and less than 10 TFLOP/s on one thread.
    EXPECT_GT(rate->forward_flops_per_s[i], 1e7);
    EXPECT_LT(rate->forward_flops_per_s[i], 1e13);
    EXPECT_GT(rate->backward_flops_per_s[i], 1e7);
    EXPECT_LT(rate->backward_flops_per_s[i], 1e13);
  }
  EXPECT_EQ(rate->source.rfind("measured ", 0), 0u) << rate->source;
  EXPECT_EQ(rate->device, host_device_name());
  CalibrationOptions bad = quick_options("");
  bad.heads_q = 3;
  bad.heads_kv = 2;
  EXPECT_FALSE(calibrate_host_rate(bad).is_ok());
}

TEST(Calibration, CacheRoundTrip) {
  const std::string dir = ::testing::TempDir() + "/seqpar_rate_cache_test/nested";
  const CalibrationOptions o = quick_options(dir);
  const std::string path = compute_rate_cache_path(dir, host_device_name(), 32, DType::kF32);
  std::remove(path.c_str());

  StatusOr<ComputeRate> first = load_or_calibrate(o);  // nothing cached: measures, writes
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(first->source.rfind("measured ", 0), 0u);
  StatusOr<ComputeRate> second = load_or_calibrate(o);  // from the cache, same numbers
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  EXPECT_EQ(second->source.rfind("cache " + path, 0), 0u) << second->source;
  EXPECT_NE(second->source.find(first->source), std::string::npos);
  ASSERT_EQ(second->block_tokens, first->block_tokens);
  for (size_t i = 0; i < first->block_tokens.size(); ++i) {
    EXPECT_NEAR(second->forward_flops_per_s[i] / first->forward_flops_per_s[i], 1.0, 1e-6);
    EXPECT_NEAR(second->backward_flops_per_s[i] / first->backward_flops_per_s[i], 1.0, 1e-6);
  }
  CalibrationOptions again = o;
  again.remeasure = true;  // ignores the cache
  StatusOr<ComputeRate> third = load_or_calibrate(again);
  ASSERT_TRUE(third.is_ok());
  EXPECT_EQ(third->source.rfind("measured ", 0), 0u);

  {
    std::ofstream damaged(path);
    damaged << "device x\npoint 64 nonsense\n";
  }
  StatusOr<ComputeRate> broken = load_compute_rate(path);
  ASSERT_FALSE(broken.is_ok());
  EXPECT_NE(broken.status().message().find(path + ":2: expected 'point TOKENS FWD BWD'"),
            std::string::npos)
      << broken.status().message();
  StatusOr<ComputeRate> remeasured = load_or_calibrate(o);  // a damaged cache is re-measured
  ASSERT_TRUE(remeasured.is_ok());
  EXPECT_EQ(remeasured->source.rfind("measured ", 0), 0u);
}

TEST(Calibration, CacheDirFollowsTheEnvironment) {
  const char* saved = std::getenv("SEQPAR_CACHE_DIR");
  const std::string restore = saved != nullptr ? saved : "";
  setenv("SEQPAR_CACHE_DIR", "/tmp/seqpar-cache-env-test", 1);
  EXPECT_EQ(compute_rate_cache_dir(), "/tmp/seqpar-cache-env-test");
  unsetenv("SEQPAR_CACHE_DIR");
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    EXPECT_EQ(compute_rate_cache_dir(), std::string(home) + "/.cache/seqpar");
  }
  if (saved != nullptr) setenv("SEQPAR_CACHE_DIR", restore.c_str(), 1);
}

TEST(Calibration, CachePathIsKeyedAndSafe) {
  const std::string a = compute_rate_cache_path("/c", "NVIDIA H100 80GB HBM3", 128, DType::kBF16);
  EXPECT_EQ(a, "/c/rate-NVIDIA_H100_80GB_HBM3-d128-bf16.txt");
  EXPECT_NE(a, compute_rate_cache_path("/c", "NVIDIA H100 80GB HBM3", 64, DType::kBF16));
  EXPECT_NE(a, compute_rate_cache_path("/c", "NVIDIA H100 80GB HBM3", 128, DType::kF16));
  EXPECT_EQ(compute_rate_cache_path("/c", "../x/y", 64, DType::kF32),
            "/c/rate-.._x_y-d64-fp32.txt");
}

TEST(LinkMeasurement, SplitsLatencyFromBandwidthWhenTheLargeMessageIsSlower) {
  // 10 us one way for 8 bytes, 1010 us for 8 + 1e9 * 1e-3 bytes: 1 GB/s, 10 us.
  const LinkFromRoundTrips split = link_from_round_trips(20e-6, 2020e-6, 8, 8 + 1'000'000);
  EXPECT_TRUE(split.clean);
  EXPECT_NEAR(split.latency_s, 10e-6, 1e-12);
  EXPECT_NEAR(split.bandwidth_bytes_per_s, 1e9, 1e3);
}

TEST(LinkMeasurement, NoisySmallMessageGivesALowerBoundNotAFailure) {
  // The small message took longer than the large one (a descheduled thread): no clean split.
  const LinkFromRoundTrips split = link_from_round_trips(8e-3, 4e-3, 8, 4'000'000);
  EXPECT_FALSE(split.clean);
  EXPECT_DOUBLE_EQ(split.latency_s, 2e-3);  // capped at the large one-way time
  EXPECT_DOUBLE_EQ(split.bandwidth_bytes_per_s, 4'000'000 / 2e-3);  // whole time as transfer
  // Just under the 2x rule also falls back; just over splits.
  EXPECT_FALSE(link_from_round_trips(1.0, 1.99, 8, 1000).clean);
  EXPECT_TRUE(link_from_round_trips(1.0, 2.0, 8, 1000).clean);
}

TEST(LinkMeasurement, ThreadsPingPongGivesPositiveFiguresOnEveryRank) {
  std::mutex mutex;
  std::vector<LinkSpec> links;
  Status status = run_threads(3, [&](Communicator& comm) -> Status {
    LinkMeasureOptions o;
    o.peer = 2;
    o.large_bytes = size_t{4} << 20;
    o.kind = LinkKind::kHost;
    SEQPAR_ASSIGN_OR_RETURN(LinkSpec link, measure_link(comm, o));
    std::lock_guard<std::mutex> lock(mutex);
    links.push_back(link);
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  ASSERT_EQ(links.size(), 3u);
  for (const LinkSpec& l : links) {
    EXPECT_EQ(l.kind, LinkKind::kHost);
    EXPECT_GT(l.bandwidth_bytes_per_s, 1e6);
    EXPECT_GE(l.latency_s, 0.0);
    EXPECT_LT(l.latency_s, 1.0);
    EXPECT_EQ(l.bandwidth_bytes_per_s, links[0].bandwidth_bytes_per_s);  // rank 0's, broadcast
  }
  std::printf("threads link: %.2f GB/s, %.1f us\n", links[0].bandwidth_bytes_per_s / 1e9,
              links[0].latency_s * 1e6);
  Status one_rank = run_threads(1, [&](Communicator& comm) -> Status {
    return measure_link(comm, LinkMeasureOptions{}).status();
  });
  EXPECT_FALSE(one_rank.is_ok());
}

}  // namespace
}  // namespace seqpar
