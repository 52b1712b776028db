// CPU block kernels vs the fp64 reference over random shapes: odd sizes, Sq != Sk, GQA/MQA,
// causal and full masks, affine (offset, striped) and index-array (zigzag, reversed) position
// maps, fp32/bf16/fp16 storage. Outputs the kernel overwrites are NaN-poisoned first; gradients
// (accumulated +=) start from random values that are subtracted afterwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/cpu_block_attention.hpp"
#include "attention_test_util.hpp"

namespace seqpar::test {
namespace {

constexpr int kNumCases = 100;
constexpr uint64_t kCaseSeed = 0x5eed0001;
constexpr int64_t kZigzagRanks = 4;
constexpr float kInitialGradAmp = 0.5f;
constexpr double kGradRmsFloor = 3e-2;
constexpr double kDkFloorOfDv = 3e-2;

int64_t pick(int idx, int salt, int64_t n) {
  return static_cast<int64_t>(
      mix64(kCaseSeed + static_cast<uint64_t>(idx) * 64u + static_cast<uint64_t>(salt)) %
      static_cast<uint64_t>(n));
}

MapSpec pick_map(int idx, int salt, MapKind kind, int64_t span) {
  MapSpec m;
  m.kind = kind;
  switch (kind) {
    case MapKind::kContiguous:
    case MapKind::kReversed:
      m.offset = pick(idx, salt, 3 * span);
      break;
    case MapKind::kStrided: {
      const int64_t ranks = 2 + pick(idx, salt + 1, 3);
      m.stride = ranks;
      m.offset = pick(idx, salt, ranks);
      break;
    }
    case MapKind::kZigzag: {  // rank r holds chunks r and 2P - 1 - r of `span`-sized chunks
      const int64_t rank = pick(idx, salt, kZigzagRanks);
      m.offset = rank * span;
      m.offset2 = (2 * kZigzagRanks - 1 - rank) * span;
      break;
    }
  }
  return m;
}

Case kernel_case(int idx) {
  const int64_t seqs[] = {1, 7, 63, 65, 130};
  const int64_t dims[] = {8, 16, 64, 80, 128};
  const int64_t ratios[] = {1, 2, 4, 8, 0};  // 0: MQA (one kv head)
  const DType dtypes[] = {DType::kF32, DType::kF32, DType::kBF16, DType::kF16};
  const MapKind kinds[] = {MapKind::kContiguous, MapKind::kStrided, MapKind::kZigzag,
                           MapKind::kReversed};
  Case c{};
  c.batch = 1 + pick(idx, 0, 2);
  c.seq_q = seqs[pick(idx, 1, 5)];
  c.seq_k = seqs[pick(idx, 2, 5)];
  c.head_dim = dims[idx % 5];
  const int64_t ratio = ratios[(idx / 5) % 5];
  c.heads_kv = ratio == 0 ? 1 : 1 + pick(idx, 3, 2);
  c.heads_q = ratio == 0 ? 3 + pick(idx, 4, 4) : ratio * c.heads_kv;
  c.mask = idx % 2 == 0 ? MaskKind::kCausal : MaskKind::kFull;
  c.dtype = dtypes[pick(idx, 5, 4)];
  const MapKind kind = kinds[(idx / 2) % 4];
  const int64_t span = std::max(c.seq_q, c.seq_k);
  c.q_map = pick_map(idx, 10, kind, span);
  c.k_map = pick_map(idx, 20, kind, span);
  return c;
}

std::string describe(const Case& c) {
  return str_cat("B=", c.batch, " Sq=", c.seq_q, " Sk=", c.seq_k, " Hq=", c.heads_q,
                 " Hkv=", c.heads_kv, " D=", c.head_dim, " mask=", mask_name(c.mask),
                 " dtype=", dtype_name(c.dtype), " map=", static_cast<int>(c.q_map.kind),
                 " q_off=", c.q_map.offset, " k_off=", c.k_map.offset, " stride=", c.q_map.stride,
                 "/", c.k_map.stride);
}

class AttentionCpuKernelTest : public ::testing::TestWithParam<int> {};

TEST_P(AttentionCpuKernelTest, ForwardMatchesReference) {
  const Case c = kernel_case(GetParam());
  SCOPED_TRACE(describe(c));
  const Problem pr = make_problem(c, static_cast<uint64_t>(GetParam()) + 1);
  const ReferenceResult ref = reference_results(pr);

  std::vector<float> out(static_cast<size_t>(pr.q_elems()), kNaN);     // (B, Sq, Hq, D)
  std::vector<float> lse(static_cast<size_t>(pr.stat_elems()), kNaN);  // (B, Hq, Sq)
  const BlockForwardParams p = pr.forward_params(out.data(), lse.data(), false);
  ASSERT_TRUE(validate_block_params(p).is_ok());
  cpu_block_forward(p);

  ASSERT_TRUE(all_finite(out));
  EXPECT_LE(relative_l2(out, ref.out), tolerance(c.dtype));
  std::vector<float> lse_finite;
  std::vector<double> ref_finite;
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) {
      ASSERT_EQ(lse[i], -INFINITY) << "row " << i << " has no kept key";
    } else {
      ASSERT_TRUE(std::isfinite(lse[i])) << "row " << i;
      lse_finite.push_back(lse[i]);
      ref_finite.push_back(ref.lse[i]);
    }
  }
  EXPECT_LE(relative_l2(lse_finite, ref_finite), tolerance(c.dtype));
}

TEST_P(AttentionCpuKernelTest, BackwardMatchesReference) {
  const Case c = kernel_case(GetParam());
  SCOPED_TRACE(describe(c));
  const Problem pr = make_problem(c, static_cast<uint64_t>(GetParam()) + 1);
  const ReferenceResult ref = reference_results(pr);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t nk = static_cast<size_t>(pr.k_elems());
  std::vector<double> ref_dq(nq), ref_dk(nk), ref_dv(nk);
  reference_backward(pr.reference(), pr.dout.values.data(), ref.lse.data(), ref.delta.data(),
                     ref_dq.data(), ref_dk.data(), ref_dv.data());

  std::vector<float> lse(ref.lse.begin(), ref.lse.end());        // (B, Hq, Sq) final
  std::vector<float> delta(ref.delta.begin(), ref.delta.end());  // (B, Hq, Sq)
  const Stored dq0 = random_stored(99, 1, pr.q_elems(), DType::kF32, kInitialGradAmp);
  const Stored dk0 = random_stored(99, 2, pr.k_elems(), DType::kF32, kInitialGradAmp);
  const Stored dv0 = random_stored(99, 3, pr.k_elems(), DType::kF32, kInitialGradAmp);
  std::vector<float> dq(dq0.values.begin(), dq0.values.end());  // (B, Sq, Hq, D)
  std::vector<float> dk(dk0.values.begin(), dk0.values.end());  // (B, Sk, Hkv, D)
  std::vector<float> dv(dv0.values.begin(), dv0.values.end());  // (B, Sk, Hkv, D)
  const BlockBackwardParams p =
      pr.backward_params(lse.data(), delta.data(), dq.data(), dk.data(), dv.data());
  ASSERT_TRUE(validate_block_params(p).is_ok());
  cpu_block_backward(p);

  ASSERT_TRUE(all_finite(dq) && all_finite(dk) && all_finite(dv));
  auto added = [](const std::vector<float>& x, const Stored& x0) {
    std::vector<double> d(x.size());
    for (size_t i = 0; i < x.size(); ++i) d[i] = static_cast<double>(x[i]) - x0.values[i];
    return d;
  };
  // dq and dk vanish by cancellation where a row's softmax is one-hot (Sk = 1: ds = dp - delta
  // = 0), leaving only fp32 rounding noise (and that of adding to the initial values). Their
  // errors are measured against at least a floor so such cases stay meaningful: for dq an RMS
  // of kGradRmsFloor per element, for dk (a sum over rows, like dv) a fraction of ||dv||.
  const double tol = tolerance(c.dtype);
  auto floored_error = [](const std::vector<double>& x, const std::vector<double>& want,
                          double floor) {
    const double scale = std::max(l2_norm(want), floor);
    return scale > 0.0 ? l2_distance(x, want) / scale : l2_distance(x, want);
  };
  const double dq_floor = kGradRmsFloor * std::sqrt(static_cast<double>(ref_dq.size()));
  EXPECT_LE(floored_error(added(dq, dq0), ref_dq, dq_floor), tol) << "dq";
  EXPECT_LE(floored_error(added(dk, dk0), ref_dk, kDkFloorOfDv * l2_norm(ref_dv)), tol) << "dk";
  EXPECT_LE(relative_l2(added(dv, dv0), ref_dv), tol) << "dv";
}

INSTANTIATE_TEST_SUITE_P(RandomShapes, AttentionCpuKernelTest, ::testing::Range(0, kNumCases));

// dq alone, and dk/dv alone, give the same values as all three together.
TEST(AttentionCpuKernel, BackwardPartialOutputs) {
  const Case c{2,
               65,
               63,
               8,
               2,
               64,
               MaskKind::kCausal,
               DType::kF32,
               {MapKind::kContiguous, 40, 1, 0},
               {MapKind::kContiguous, 0, 1, 0}};
  const Problem pr = make_problem(c, 7);
  const ReferenceResult ref = reference_results(pr);
  std::vector<float> lse(ref.lse.begin(), ref.lse.end());
  std::vector<float> delta(ref.delta.begin(), ref.delta.end());
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t nk = static_cast<size_t>(pr.k_elems());
  std::vector<float> dq(nq, 0.0f), dk(nk, 0.0f), dv(nk, 0.0f);
  cpu_block_backward(pr.backward_params(lse.data(), delta.data(), dq.data(), dk.data(), dv.data()));
  std::vector<float> dq_only(nq, 0.0f), dk_only(nk, 0.0f), dv_only(nk, 0.0f);
  cpu_block_backward(
      pr.backward_params(lse.data(), delta.data(), dq_only.data(), nullptr, nullptr));
  cpu_block_backward(
      pr.backward_params(lse.data(), delta.data(), nullptr, dk_only.data(), dv_only.data()));
  EXPECT_EQ(dq, dq_only);
  EXPECT_EQ(dk, dk_only);
  EXPECT_EQ(dv, dv_only);
}

}  // namespace
}  // namespace seqpar::test
