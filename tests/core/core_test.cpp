// core: dtype conversions (round to nearest even, specials), Status formatting, TensorView.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.hpp"
#include "core/host_buffer.hpp"
#include "core/log.hpp"
#include "core/random.hpp"
#include "core/status.hpp"
#include "core/tensor.hpp"

namespace seqpar {
namespace {

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(-2.5f)), -2.5f);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(1.0f + 0.00390625f)), 1.0f);
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(1.0f + 3 * 0.00390625f)), 1.015625f);
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(std::nanf("")))));
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(-INFINITY)), -INFINITY);
}

TEST(DType, Fp16MatchesIeeeBinary16) {
  EXPECT_EQ(float_to_fp16_bits(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_fp16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16_bits(70000.0f), 0x7c00);                // overflow to inf
  EXPECT_EQ(float_to_fp16_bits(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_fp16_bits(6.103515625e-05f), 0x0400);        // smallest normal
  EXPECT_EQ(float_to_fp16_bits(2.0e-08f), 0x0000);                // below half the smallest
  EXPECT_EQ(float_to_fp16_bits(1.0f + 0.00048828125f), 0x3c00);   // halfway: ties to even
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(std::nanf("")))));
  // Every finite fp16 value survives a round trip through float.
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    if ((h & 0x7c00u) == 0x7c00u) continue;  // inf / NaN
    ASSERT_EQ(float_to_fp16_bits(fp16_bits_to_float(h)), h) << std::hex << bits;
  }
}

TEST(DType, ParseNamesAndRejectUnknown) {
  EXPECT_EQ(parse_dtype("bf16").value(), DType::kBF16);
  auto bad = parse_dtype("fp8");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("fp8"), std::string::npos);
}

TEST(Status, NamesRankHostFileAndLine) {
  set_log_rank(3);
  Status s = SEQPAR_FAIL(StatusCode::kInvalidArgument, "seq ", 7, " is odd");
  set_log_rank(-1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("seq 7 is odd"), std::string::npos);
  EXPECT_NE(s.message().find("rank 3 on " + host_name()), std::string::npos);
  EXPECT_NE(s.message().find("core_test.cpp:"), std::string::npos);
  EXPECT_EQ(s.to_string().rfind("invalid_argument: ", 0), 0u);
}

TEST(TensorView, ContiguousStridesAndShapeString) {
  float data[2 * 3 * 4 * 5];
  auto t = TensorView::contiguous(data, DType::kF32, {2, 3, 4, 5});
  EXPECT_EQ(t.numel(), 120);
  EXPECT_EQ(t.strides[0], 60);
  EXPECT_EQ(t.strides[3], 1);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.shape_string(), "(2, 3, 4, 5) fp32 host");
  t.strides[1] = 40;
  EXPECT_FALSE(t.is_contiguous());
}

TEST(HostBuffer, AllocatesAlignedAndMoves) {
  HostBuffer a;
  ASSERT_TRUE(a.allocate(1000).is_ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
  a.fill_zero();
  HostBuffer b = std::move(a);
  EXPECT_EQ(b.bytes(), 1000u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.as<unsigned char>()[999], 0);
}

TEST(Random, DependsOnlyOnSeedStreamAndIndex) {
  EXPECT_EQ(uniform_pm1(1, 2, 3), uniform_pm1(1, 2, 3));
  EXPECT_NE(uniform_pm1(1, 2, 3), uniform_pm1(1, 2, 4));
  EXPECT_NE(uniform_pm1(1, 2, 3), uniform_pm1(1, 3, 3));
  double sum = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const float x = uniform_pm1(7, 0, i);
    ASSERT_GE(x, -1.0f);
    ASSERT_LT(x, 1.0f);
    sum += x;
  }
  EXPECT_LT(std::abs(sum / 10000), 0.03);
}

}  // namespace
}  // namespace seqpar
