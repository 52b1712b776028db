// split_heads: every q head on exactly one rank, a uniform local GQA ratio the block kernel can
// use without head offsets, kv heads only on the ranks that read them, splits as even as
// possible, and Hq < P refused.
#include "partition/head_split.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>

namespace seqpar {
namespace {

class HeadSplit : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int>> {};

TEST_P(HeadSplit, CoversHeadsOnceWithUniformLocalGroupsAndNoSpareKvHeads) {
  const auto [heads_q, heads_kv, ranks] = GetParam();
  const StatusOr<std::vector<HeadSlice>> split = split_heads(heads_q, heads_kv, ranks);
  ASSERT_TRUE(split.is_ok()) << split.status().to_string();
  const std::vector<HeadSlice>& slices = split.value();
  ASSERT_EQ(slices.size(), static_cast<size_t>(ranks));
  const int64_t group = heads_q / heads_kv;
  std::vector<int> owners_of_q(static_cast<size_t>(heads_q), 0);
  std::vector<int> ranks_of_kv(static_cast<size_t>(heads_kv), 0);
  int64_t fewest_q = heads_q, most_q = 0;
  for (int r = 0; r < ranks; ++r) {
    const HeadSlice& s = slices[static_cast<size_t>(r)];
    SCOPED_TRACE(testing::Message() << "rank " << r);
    ASSERT_GE(s.q_count, 1);
    ASSERT_GE(s.kv_count, 1);
    ASSERT_EQ(s.q_count % s.kv_count, 0);  // the kernel's Hq_local % Hkv_local == 0
    const int64_t local_group = s.q_count / s.kv_count;
    std::set<int64_t> kv_read;
    for (int64_t h = 0; h < s.q_count; ++h) {
      ++owners_of_q[static_cast<size_t>(s.q_begin + h)];
      // The kernel's local rule (no head offsets) reads the kv head the global rule names.
      EXPECT_EQ(s.kv_begin + h / local_group, (s.q_begin + h) / group) << "local q head " << h;
      kv_read.insert((s.q_begin + h) / group);
    }
    // The rank receives exactly the kv heads its q heads read: none sent where not needed.
    EXPECT_EQ(kv_read.size(), static_cast<size_t>(s.kv_count));
    EXPECT_EQ(*kv_read.begin(), s.kv_begin);
    for (int64_t j = 0; j < s.kv_count; ++j) ++ranks_of_kv[static_cast<size_t>(s.kv_begin + j)];
    fewest_q = std::min(fewest_q, s.q_count);
    most_q = std::max(most_q, s.q_count);
  }
  for (int64_t h = 0; h < heads_q; ++h) EXPECT_EQ(owners_of_q[static_cast<size_t>(h)], 1);
  // A kv head is replicated only when there are fewer kv heads than ranks, and then to as
  // many ranks as any other kv head, give or take one.
  const auto [least_shared, most_shared] =
      std::minmax_element(ranks_of_kv.begin(), ranks_of_kv.end());
  EXPECT_LE(*most_shared - *least_shared, 1);
  if (heads_kv >= ranks) {
    EXPECT_EQ(*most_shared, 1);
    EXPECT_LE(most_q - fewest_q, group);  // whole groups: kv counts differ by at most one
  } else {
    for (int r = 1; r < ranks; ++r) {  // ranks sharing a kv head split its group evenly
      const HeadSlice& a = slices[static_cast<size_t>(r - 1)];
      const HeadSlice& b = slices[static_cast<size_t>(r)];
      if (a.kv_begin == b.kv_begin) {
        EXPECT_LE(std::abs(a.q_count - b.q_count), 1) << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, HeadSplit,
    ::testing::Values(std::make_tuple(8, 2, 4), std::make_tuple(8, 2, 2), std::make_tuple(8, 2, 8),
                      std::make_tuple(8, 2, 3), std::make_tuple(8, 8, 3), std::make_tuple(8, 1, 8),
                      std::make_tuple(6, 2, 4), std::make_tuple(5, 5, 2), std::make_tuple(12, 3, 6),
                      std::make_tuple(12, 3, 8), std::make_tuple(16, 4, 6),
                      std::make_tuple(7, 7, 7), std::make_tuple(3, 1, 2), std::make_tuple(4, 4, 1)),
    [](const ::testing::TestParamInfo<std::tuple<int64_t, int64_t, int>>& param_info) {
      return str_cat("h", std::get<0>(param_info.param), "kv", std::get<1>(param_info.param), "_P",
                     std::get<2>(param_info.param));
    });

// The uneven example by hand: Hq = 6, Hkv = 2 on 4 ranks. Each kv head is shared by two
// ranks, which split its group of three q heads 2 + 1.
TEST(HeadSplitByHand, SixHeadsTwoKvHeadsFourRanks) {
  const std::vector<HeadSlice> s = split_heads(6, 2, 4).value();
  const int64_t expected[4][4] = {{0, 2, 0, 1}, {2, 1, 0, 1}, {3, 2, 1, 1}, {5, 1, 1, 1}};
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(s[static_cast<size_t>(r)].q_begin, expected[r][0]) << r;
    EXPECT_EQ(s[static_cast<size_t>(r)].q_count, expected[r][1]) << r;
    EXPECT_EQ(s[static_cast<size_t>(r)].kv_begin, expected[r][2]) << r;
    EXPECT_EQ(s[static_cast<size_t>(r)].kv_count, expected[r][3]) << r;
  }
}

// Hkv >= P with Hkv % P != 0: whole kv heads, 3 + 2, with their q groups.
TEST(HeadSplitByHand, FiveKvHeadsTwoRanks) {
  const std::vector<HeadSlice> s = split_heads(10, 5, 2).value();
  EXPECT_EQ(s[0].kv_begin, 0);
  EXPECT_EQ(s[0].kv_count, 3);
  EXPECT_EQ(s[0].q_count, 6);
  EXPECT_EQ(s[1].kv_begin, 3);
  EXPECT_EQ(s[1].kv_count, 2);
  EXPECT_EQ(s[1].q_begin, 6);
  EXPECT_EQ(s[1].q_count, 4);
}

TEST(HeadSplitRejects, FewerQueryHeadsThanRanks) {
  const StatusOr<std::vector<HeadSlice>> split = split_heads(4, 2, 6);
  ASSERT_FALSE(split.is_ok());
  EXPECT_EQ(split.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(split.status().message().find(
                "ulysses needs at least as many query heads (H) as ranks (P): H = 4, P = 6"),
            std::string::npos)
      << split.status().message();
}

}  // namespace
}  // namespace seqpar
