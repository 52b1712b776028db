// Accumulate mode, the (O, LSE) merge, fully masked rows and the delta kernel: splitting the
// keys into pieces and accumulating (or merging) equals one call; merging is associative and
// exact against fully masked partials; masked rows give lse -inf, out 0 and no gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "attention/cpu_block_attention.hpp"
#include "attention_test_util.hpp"

namespace seqpar::test {
namespace {

constexpr double kSplitTolerance = 1e-6;
constexpr double kMergeTolerance = 1e-6;

// The same problem restricted to keys [k0, k1): k, v pointers and positions of the piece (B = 1).
BlockForwardParams key_piece(const Problem& pr, BlockForwardParams p, int64_t k0, int64_t k1) {
  const int64_t row_bytes =
      pr.c.heads_kv * pr.c.head_dim * static_cast<int64_t>(dtype_size(pr.c.dtype));
  p.shape.seq_k = k1 - k0;
  p.k = pr.k.bytes.data() + k0 * row_bytes;
  p.v = pr.v.bytes.data() + k0 * row_bytes;
  p.k_pos = PositionMap::indexed(pr.k_pos.data() + k0);
  return p;
}

struct SplitCase {
  MaskKind mask;
  DType dtype;
};

class AttentionAccumulateTest : public ::testing::TestWithParam<SplitCase> {};

TEST_P(AttentionAccumulateTest, SplitKeysEqualsOneCall) {
  const SplitCase sc = GetParam();
  const Case c{1,
               130,
               150,
               8,
               2,
               64,
               sc.mask,
               sc.dtype,
               {MapKind::kContiguous, 100, 1, 0},
               {MapKind::kZigzag, 0, 1, 200}};
  const Problem pr = make_problem(c, 11);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t ns = static_cast<size_t>(pr.stat_elems());
  std::vector<float> out(nq, kNaN), lse(ns, kNaN);  // one call
  cpu_block_forward(pr.forward_params(out.data(), lse.data(), false));

  const int64_t cuts[] = {0, 37, 101, 150};
  std::vector<float> acc_out(nq, kNaN), acc_lse(ns, kNaN);       // first piece overwrites
  std::vector<float> mrg_out(nq, 0.0f), mrg_lse(ns, -INFINITY);  // pieces merged afterwards
  for (int piece = 0; piece < 3; ++piece) {
    const BlockForwardParams whole = pr.forward_params(acc_out.data(), acc_lse.data(), piece > 0);
    cpu_block_forward(key_piece(pr, whole, cuts[piece], cuts[piece + 1]));
    std::vector<float> part_out(nq, kNaN), part_lse(ns, kNaN);
    cpu_block_forward(key_piece(pr, pr.forward_params(part_out.data(), part_lse.data(), false),
                                cuts[piece], cuts[piece + 1]));
    cpu_merge_partials(mrg_out.data(), mrg_lse.data(), part_out.data(), part_lse.data(), 1, c.seq_q,
                       c.heads_q, c.head_dim);
  }
  const std::vector<double> ref_out(out.begin(), out.end());
  for (const auto* x : {&acc_out, &mrg_out}) {
    ASSERT_TRUE(all_finite(*x));
    EXPECT_LE(relative_l2(*x, ref_out), kSplitTolerance);
  }
  for (size_t i = 0; i < ns; ++i) {
    for (float l : {acc_lse[i], mrg_lse[i]}) {
      if (std::isinf(lse[i])) {
        ASSERT_EQ(l, lse[i]) << "row " << i;
      } else {
        ASSERT_NEAR(l, lse[i], kSplitTolerance * (1.0 + std::fabs(lse[i]))) << "row " << i;
      }
    }
  }
}

// Backward over key pieces: dq sums over the pieces, dk/dv of each piece are its slice.
TEST_P(AttentionAccumulateTest, BackwardSplitKeysEqualsOneCall) {
  const SplitCase sc = GetParam();
  const Case c{1,
               70,
               90,
               4,
               4,
               32,
               sc.mask,
               sc.dtype,
               {MapKind::kStrided, 1, 2, 0},
               {MapKind::kStrided, 0, 2, 0}};
  const Problem pr = make_problem(c, 12);
  const ReferenceResult ref = reference_results(pr);
  std::vector<float> lse(ref.lse.begin(), ref.lse.end());
  std::vector<float> delta(ref.delta.begin(), ref.delta.end());
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t nk = static_cast<size_t>(pr.k_elems());
  std::vector<float> dq(nq, 0.0f), dk(nk, 0.0f), dv(nk, 0.0f);
  cpu_block_backward(pr.backward_params(lse.data(), delta.data(), dq.data(), dk.data(), dv.data()));

  const int64_t cuts[] = {0, 64, 90};
  const int64_t row = c.heads_kv * c.head_dim;
  const int64_t row_bytes = row * static_cast<int64_t>(dtype_size(c.dtype));
  std::vector<float> dq_split(nq, 0.0f), dk_split(nk, 0.0f), dv_split(nk, 0.0f);
  for (int piece = 0; piece < 2; ++piece) {
    const int64_t k0 = cuts[piece];
    BlockBackwardParams p =
        pr.backward_params(lse.data(), delta.data(), dq_split.data(), dk_split.data() + k0 * row,
                           dv_split.data() + k0 * row);
    p.shape.seq_k = cuts[piece + 1] - k0;
    p.k = pr.k.bytes.data() + k0 * row_bytes;
    p.v = pr.v.bytes.data() + k0 * row_bytes;
    p.k_pos = PositionMap::affine(pr.k_pos[static_cast<size_t>(k0)], 2);
    cpu_block_backward(p);
  }
  EXPECT_LE(relative_l2(dq_split, std::vector<double>(dq.begin(), dq.end())), kSplitTolerance);
  EXPECT_EQ(dk_split, dk);
  EXPECT_EQ(dv_split, dv);
}

INSTANTIATE_TEST_SUITE_P(MasksAndDtypes, AttentionAccumulateTest,
                         ::testing::Values(SplitCase{MaskKind::kCausal, DType::kF32},
                                           SplitCase{MaskKind::kFull, DType::kF32},
                                           SplitCase{MaskKind::kCausal, DType::kBF16},
                                           SplitCase{MaskKind::kFull, DType::kF16}));

// Queries at positions 0..69 against keys at 50..89 (causal): rows 0..49 see no key.
TEST(AttentionFullyMasked, RowsGiveMinusInfZeroOutAndNoGradient) {
  const Case c{2,
               70,
               40,
               4,
               2,
               16,
               MaskKind::kCausal,
               DType::kF32,
               {MapKind::kContiguous, 0, 1, 0},
               {MapKind::kContiguous, 50, 1, 0}};
  const Problem pr = make_problem(c, 13);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t ns = static_cast<size_t>(pr.stat_elems());
  std::vector<float> out(nq, kNaN), lse(ns, kNaN);
  cpu_block_forward(pr.forward_params(out.data(), lse.data(), false));
  ASSERT_TRUE(all_finite(out));
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads_q; ++h) {
      for (int64_t i = 0; i < c.seq_q; ++i) {
        const float l = lse[static_cast<size_t>((b * c.heads_q + h) * c.seq_q + i)];
        if (i < 50) {
          EXPECT_EQ(l, -INFINITY) << "row " << i;
          const float* o = out.data() + ((b * c.seq_q + i) * c.heads_q + h) * c.head_dim;
          for (int64_t e = 0; e < c.head_dim; ++e) EXPECT_EQ(o[e], 0.0f);
        } else {
          EXPECT_TRUE(std::isfinite(l)) << "row " << i;
        }
      }
    }
  }

  // Accumulating a block that keeps nothing for any row leaves (out, lse) bit-exact.
  std::vector<float> out2 = out, lse2 = lse;
  BlockForwardParams none = pr.forward_params(out2.data(), lse2.data(), true);
  none.k_pos = PositionMap::affine(1000);
  cpu_block_forward(none);
  EXPECT_EQ(0, std::memcmp(out2.data(), out.data(), nq * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(lse2.data(), lse.data(), ns * sizeof(float)));

  // Backward with the final lse: masked rows get no dq; a block keeping nothing adds nothing.
  std::vector<float> delta(ns, 0.5f);
  std::vector<float> dq(nq, 0.0f), dk(pr.k_elems(), 0.0f), dv(pr.k_elems(), 0.0f);
  cpu_block_backward(pr.backward_params(lse.data(), delta.data(), dq.data(), dk.data(), dv.data()));
  ASSERT_TRUE(all_finite(dq) && all_finite(dk) && all_finite(dv));
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t i = 0; i < 50; ++i) {
      const float* g = dq.data() + (b * c.seq_q + i) * c.heads_q * c.head_dim;
      for (int64_t e = 0; e < c.heads_q * c.head_dim; ++e) ASSERT_EQ(g[e], 0.0f);
    }
  }
  std::vector<float> dq2(nq, 0.0f), dk2(pr.k_elems(), 0.0f), dv2(pr.k_elems(), 0.0f);
  BlockBackwardParams nothing =
      pr.backward_params(lse.data(), delta.data(), dq2.data(), dk2.data(), dv2.data());
  nothing.k_pos = PositionMap::affine(1000);
  cpu_block_backward(nothing);
  for (const auto* g : {&dq2, &dk2, &dv2}) {
    for (float x : *g) ASSERT_EQ(x, 0.0f);
  }
}

// Random partials (B, S, H, D) with some rows fully masked (lse -inf, out 0).
struct Partial {
  std::vector<float> out, lse;
};

Partial random_partial(uint64_t seed, int64_t b, int64_t s, int64_t h, int64_t d,
                       int masked_every) {
  Partial p;
  p.out.resize(static_cast<size_t>(b * s * h * d));
  p.lse.resize(static_cast<size_t>(b * h * s));
  for (size_t i = 0; i < p.out.size(); ++i) p.out[i] = uniform_pm1(seed, 1, i);
  for (size_t i = 0; i < p.lse.size(); ++i) p.lse[i] = 3.0f * uniform_pm1(seed, 2, i);
  for (int64_t bb = 0; bb < b; ++bb) {
    for (int64_t i = 0; i < s; i += masked_every) {
      for (int64_t hh = 0; hh < h; ++hh) {
        p.lse[static_cast<size_t>((bb * h + hh) * s + i)] = -INFINITY;
        float* o = p.out.data() + ((bb * s + i) * h + hh) * d;
        for (int64_t e = 0; e < d; ++e) o[e] = 0.0f;
      }
    }
  }
  return p;
}

TEST(AttentionMerge, AssociativeAndExactWithMaskedPartials) {
  const int64_t b = 2, s = 33, h = 3, d = 24;
  const Partial a = random_partial(21, b, s, h, d, 3);
  const Partial bp = random_partial(22, b, s, h, d, 5);
  const Partial cp = random_partial(23, b, s, h, d, 2);
  Partial left = a;  // merge(merge(a, b), c)
  cpu_merge_partials(left.out.data(), left.lse.data(), bp.out.data(), bp.lse.data(), b, s, h, d);
  cpu_merge_partials(left.out.data(), left.lse.data(), cp.out.data(), cp.lse.data(), b, s, h, d);
  Partial bc = bp;  // merge(a, merge(b, c))
  cpu_merge_partials(bc.out.data(), bc.lse.data(), cp.out.data(), cp.lse.data(), b, s, h, d);
  Partial right = a;
  cpu_merge_partials(right.out.data(), right.lse.data(), bc.out.data(), bc.lse.data(), b, s, h, d);
  ASSERT_TRUE(all_finite(left.out) && all_finite(right.out));
  for (size_t i = 0; i < left.out.size(); ++i)
    ASSERT_NEAR(left.out[i], right.out[i], kMergeTolerance);
  for (size_t i = 0; i < left.lse.size(); ++i) {
    if (std::isinf(left.lse[i])) {
      ASSERT_EQ(left.lse[i], right.lse[i]);
    } else {
      ASSERT_NEAR(left.lse[i], right.lse[i], kMergeTolerance);
    }
  }

  // Merging with an all-masked partial, on either side, is exact.
  const Partial masked = random_partial(24, b, s, h, d, 1);
  Partial x = a;
  cpu_merge_partials(x.out.data(), x.lse.data(), masked.out.data(), masked.lse.data(), b, s, h, d);
  EXPECT_EQ(0, std::memcmp(x.out.data(), a.out.data(), a.out.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(x.lse.data(), a.lse.data(), a.lse.size() * sizeof(float)));
  Partial y = masked;
  cpu_merge_partials(y.out.data(), y.lse.data(), a.out.data(), a.lse.data(), b, s, h, d);
  EXPECT_EQ(0, std::memcmp(y.out.data(), a.out.data(), a.out.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(y.lse.data(), a.lse.data(), a.lse.size() * sizeof(float)));
}

TEST(AttentionMerge, MatchesClosedForm) {
  // Two rows of one element: lse 0 and log 3 merge to log 4 with weights 1/4, 3/4.
  float out[2] = {1.0f, 0.0f}, lse[1] = {0.0f};
  const float out2[1] = {5.0f}, lse2[1] = {std::log(3.0f)};
  cpu_merge_partials(out, lse, out2, lse2, 1, 1, 1, 1);
  EXPECT_NEAR(out[0], 0.25f * 1.0f + 0.75f * 5.0f, 1e-6);
  EXPECT_NEAR(lse[0], std::log(4.0f), 1e-6);
}

TEST(AttentionDelta, MatchesDirectSum) {
  const int64_t b = 2, s = 37, h = 5, d = 80;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Stored out = random_stored(31, 1, b * s * h * d, dtype, 1.0f);
    const Stored dout = random_stored(31, 2, b * s * h * d, dtype, 1.0f);
    std::vector<float> delta(static_cast<size_t>(b * h * s), kNaN);  // (B, H, S)
    cpu_attention_delta(out.data(), dout.data(), dtype, b, s, h, d, delta.data());
    std::vector<double> direct(delta.size(), 0.0);
    for (int64_t bb = 0; bb < b; ++bb) {
      for (int64_t i = 0; i < s; ++i) {
        for (int64_t hh = 0; hh < h; ++hh) {
          const size_t row = static_cast<size_t>(((bb * s + i) * h + hh) * d);
          double sum = 0.0;
          for (size_t e = 0; e < static_cast<size_t>(d); ++e)
            sum += out.values[row + e] * dout.values[row + e];
          direct[static_cast<size_t>((bb * h + hh) * s + i)] = sum;
        }
      }
    }
    EXPECT_LE(relative_l2(delta, direct), 1e-6);
  }
}

}  // namespace
}  // namespace seqpar::test
