// LightSeq's schedule (P = 1..16): every causal block pair computed exactly once, per-rank pair
// counts within one of each other, P/2 + 1 steps, consistent transfers; and its communication
// formula against a count by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "runtime/lightseq_pairing.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

TEST(LightSeqSchedule, BalancedAndCompleteForOneToSixteenRanks) {
  for (int ranks = 1; ranks <= 16; ++ranks) {
    SCOPED_TRACE(ranks);
    const LightSeqPairing schedule = lightseq_pairing(ranks);
    const int steps = static_cast<int>(schedule.steps.size());
    EXPECT_EQ(steps, ranks / 2 + 1);                                         // odd P: (P + 1) / 2
    std::vector<int> times_computed(static_cast<size_t>(ranks * ranks), 0);  // (P, P): (i, j)
    std::vector<int> pairs_of(static_cast<size_t>(ranks), 0);                // (P)
    for (int t = 0; t < steps; ++t) {
      for (int r = 0; r < ranks; ++r) {
        const LightSeqRankStep& s = schedule.at(t, r);
        // Transfers pair up: what r sends, the peer expects from r.
        if (s.kv_to >= 0) {
          EXPECT_EQ(schedule.at(t, s.kv_to).kv_from, r);
        }
        if (s.q_to >= 0) {
          EXPECT_EQ(schedule.at(t, s.q_to).q_from, r);
        }
        if (!s.computes()) continue;
        ASSERT_LE(s.kv_block, s.q_block) << "a pair the causal mask drops";
        ASSERT_GE(s.kv_block, 0);
        // The pair's operands are this rank's own or arrive this step.
        EXPECT_TRUE(s.q_block == r || s.q_from == s.q_block) << "step " << t << " rank " << r;
        EXPECT_TRUE(s.kv_block == r || s.kv_from == s.kv_block) << "step " << t << " rank " << r;
        EXPECT_TRUE(s.q_from < 0 || s.kv_from < 0) << "a helper computes with its own K/V";
        ++times_computed[static_cast<size_t>(s.q_block * ranks + s.kv_block)];
        ++pairs_of[static_cast<size_t>(r)];
      }
    }
    for (int i = 0; i < ranks; ++i) {
      for (int j = 0; j <= i; ++j) {
        EXPECT_EQ(times_computed[static_cast<size_t>(i * ranks + j)], 1)
            << "pair " << i << ", " << j;
      }
    }
    const auto [least, most] = std::minmax_element(pairs_of.begin(), pairs_of.end());
    EXPECT_LE(*most - *least, 1) << "pairs per rank from " << *least << " to " << *most;
    EXPECT_EQ(*most, (ranks + 2) / 2);  // ceil((P + 1) / 2)
  }
}

TEST(LightSeqSchedule, PairCountsForFourAndFiveRanks) {
  auto counts = [](int ranks) {
    const LightSeqPairing schedule = lightseq_pairing(ranks);
    std::vector<int> pairs(static_cast<size_t>(ranks), 0);
    for (const auto& step : schedule.steps) {
      for (int r = 0; r < ranks; ++r)
        pairs[static_cast<size_t>(r)] += step[static_cast<size_t>(r)].computes();
    }
    return pairs;
  };
  EXPECT_EQ(counts(4), (std::vector<int>{2, 2, 3, 3}));
  EXPECT_EQ(counts(5), (std::vector<int>{3, 3, 3, 3, 3}));
}

// By hand, B = 1, S = 64 over P = 4 (16 tokens per rank), Hq = 4, Hkv = 2, D = 8, fp32:
// Q 2048 bytes, one of K/V 1024, LSE 256. Step 1: K/V r -> r + 1, rank 0 helps rank 3 with pair
// (3, 0). Step 2: K/V r -> r + 2, no helpers.
TEST(LightSeqCommFormula, MatchesHandCount) {
  const AttentionProblem p{1, 64, 4, 2, 8, MaskKind::kCausal, DType::kF32, 0.0f};
  const int64_t q = 2048, kv = 1024, lse = 256;
  const int64_t forward_bytes[] = {2 * 2 * kv + (q + lse), 2 * 2 * kv, 1 * 2 * kv, q};
  const int64_t forward_calls[] = {3, 2, 2, 3};
  const int64_t backward_bytes[] = {2 * 2 * kv + q, 2 * 2 * kv + 1 * 2 * kv,
                                    1 * 2 * kv + 2 * 2 * kv, 2 * 2 * kv + (2 * q + 2 * lse)};
  const oracle::Shape four{p, 4}, one{p, 1};
  const std::vector<CommVolume> fwd =
      testing::schedule_comm(SchemeKind::kLightSeq, four, Pass::kForward);
  const std::vector<CommVolume> bwd =
      testing::schedule_comm(SchemeKind::kLightSeq, four, Pass::kBackward);
  for (int r = 0; r < 4; ++r) {
    SCOPED_TRACE(r);
    const size_t at = static_cast<size_t>(r);
    for (const CommVolume& f : {fwd[at], oracle::forward(SchemeKind::kLightSeq, four, r)}) {
      EXPECT_EQ(f[CommOp::kExchange], forward_calls[r]);
      EXPECT_EQ(f.bytes_sent, forward_bytes[r]);
    }
    for (const CommVolume& b : {bwd[at], oracle::backward(SchemeKind::kLightSeq, four, r)}) {
      EXPECT_EQ(b[CommOp::kExchange], 4);
      EXPECT_EQ(b.bytes_sent, backward_bytes[r]);
    }
  }
  EXPECT_EQ(testing::schedule_comm(SchemeKind::kLightSeq, one, Pass::kForward)[0].bytes_sent, 0);
  EXPECT_EQ(
      testing::schedule_comm(SchemeKind::kLightSeq, one, Pass::kBackward)[0][CommOp::kExchange], 0);
  EXPECT_EQ(oracle::forward(SchemeKind::kLightSeq, one, 0).bytes_sent, 0);
}

}  // namespace
}  // namespace seqpar
