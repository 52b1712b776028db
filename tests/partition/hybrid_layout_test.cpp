// The hybrid_zigzag layout: the U x R grid's token placement by hand, round trips of the
// global <-> local maps and segments, scatter/gather, causal balance across groups, and the
// divisibility rule S % 2R == 0 (a group's S/R tokens may split unevenly over its U ranks).
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "partition/layout.hpp"

namespace seqpar {
namespace {

struct Grid {
  int ulysses, rings;
};
constexpr Grid kGrids[] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {2, 3}, {3, 2}, {4, 2}, {2, 4}, {3, 3}};

// Every token has one owner, and positions, segments, global_position and owner agree.
TEST(HybridLayout, EveryTokenHasExactlyOneOwnerAndMapsRoundTrip) {
  for (const Grid g : kGrids) {
    const int ranks = g.ulysses * g.rings;
    for (const int64_t seq : {int64_t{2 * 2 * 3 * 4 * 3 * 5}, int64_t{2 * 4 * 3 * 37}}) {
      // The first is divisible by 2R*U for every grid above; the second only by 2R.
      SCOPED_TRACE(str_cat("U=", g.ulysses, " R=", g.rings, " S=", seq));
      auto layout = Layout::make(LayoutKind::kHybridZigzag, seq, ranks, g.ulysses);
      ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
      EXPECT_EQ(layout->ulysses_degree(), g.ulysses);
      std::vector<int> seen(static_cast<size_t>(seq), 0);
      for (int r = 0; r < ranks; ++r) {
        std::vector<int64_t> pos(static_cast<size_t>(layout->local_seq(r)), -1);
        layout->positions(r, pos.data());
        int64_t covered = 0;
        for (const Segment& s : layout->segments(r)) {
          EXPECT_EQ(s.local_begin, covered);
          covered += s.length;
        }
        EXPECT_EQ(covered, layout->local_seq(r));
        for (int64_t i = 0; i < layout->local_seq(r); ++i) {
          const int64_t t = layout->global_position(r, i);
          EXPECT_EQ(t, pos[static_cast<size_t>(i)]);
          ASSERT_GE(t, 0);
          ASSERT_LT(t, seq);
          ++seen[static_cast<size_t>(t)];
          const auto [owner, local] = layout->owner(t);
          EXPECT_EQ(owner, r);
          EXPECT_EQ(local, i);
        }
      }
      for (int64_t t = 0; t < seq; ++t) EXPECT_EQ(seen[static_cast<size_t>(t)], 1) << "token " << t;
    }
  }
}

// Each group's ranks together hold exactly zigzag rank g's tokens over R groups, in order.
TEST(HybridLayout, GroupsHoldTheZigzagShardsOfTheRingInOrder) {
  for (const Grid g : kGrids) {
    const int64_t seq = 2 * 4 * 3 * 7;  // uneven within the groups of U = 3 and 4
    const int ranks = g.ulysses * g.rings;
    auto hybrid = Layout::make(LayoutKind::kHybridZigzag, seq, ranks, g.ulysses).value();
    auto zigzag = Layout::make(LayoutKind::kZigzag, seq, g.rings).value();
    for (int group = 0; group < g.rings; ++group) {
      std::vector<int64_t> want(static_cast<size_t>(zigzag.local_seq(group)));
      zigzag.positions(group, want.data());
      std::vector<int64_t> got;
      for (int u = 0; u < g.ulysses; ++u) {
        for (int64_t i = 0; i < hybrid.local_seq(group * g.ulysses + u); ++i) {
          got.push_back(hybrid.global_position(group * g.ulysses + u, i));
        }
      }
      EXPECT_EQ(got, want) << "U=" << g.ulysses << " R=" << g.rings << " group " << group;
    }
  }
}

// U x R = 3 x 2, S = 24: chunks of 6; group 0 holds chunks 0 and 3 = [0, 6) + [18, 24), group 1
// chunks 1 and 2 = [6, 18); each rank 4 tokens. Rank 1 straddles its group's two chunks.
TEST(HybridLayout, SegmentsMatchTheDefinitionByHand) {
  auto layout = Layout::make(LayoutKind::kHybridZigzag, 24, 6, 3).value();
  const std::vector<std::vector<int64_t>> want = {{0, 1, 2, 3}, {4, 5, 18, 19},   {20, 21, 22, 23},
                                                  {6, 7, 8, 9}, {10, 11, 12, 13}, {14, 15, 16, 17}};
  for (int r = 0; r < 6; ++r) {
    std::vector<int64_t> pos(4);
    layout.positions(r, pos.data());
    EXPECT_EQ(pos, want[static_cast<size_t>(r)]) << "rank " << r;
  }
  const std::vector<Segment> straddling = layout.segments(1);
  ASSERT_EQ(straddling.size(), 2u);
  EXPECT_EQ(straddling[0].global_offset, 4);
  EXPECT_EQ(straddling[0].length, 2);
  EXPECT_EQ(straddling[1].local_begin, 2);
  EXPECT_EQ(straddling[1].global_offset, 18);
  EXPECT_EQ(layout.segments(3).size(), 1u);  // inside chunk 1
}

// Causal work of group g = sum over its tokens of (position + 1): balanced like zigzag.
TEST(HybridLayout, GroupsShareCausalWorkEqually) {
  auto layout = Layout::make(LayoutKind::kHybridZigzag, 1024, 8, 2).value();
  std::vector<int64_t> work(4, 0);
  for (int r = 0; r < 8; ++r) {
    std::vector<int64_t> pos(static_cast<size_t>(layout.local_seq(r)));
    layout.positions(r, pos.data());
    work[static_cast<size_t>(r / 2)] +=
        std::accumulate(pos.begin(), pos.end(), int64_t{0}) + layout.local_seq(r);
  }
  for (int64_t w : work) EXPECT_EQ(w, work[0]);
}

TEST(HybridLayout, ScatterThenGatherRebuildsTheGlobalTensor) {
  const int64_t batch = 2, seq = 48, row = 3;
  std::vector<float> global(static_cast<size_t>(batch * seq * row));
  std::iota(global.begin(), global.end(), 1.0f);
  for (const Grid g : {Grid{2, 2}, Grid{3, 2}, Grid{2, 3}, Grid{4, 1}}) {
    const int ranks = g.ulysses * g.rings;
    auto layout = Layout::make(LayoutKind::kHybridZigzag, seq, ranks, g.ulysses).value();
    std::vector<float> rebuilt(global.size(), -1.0f);
    std::vector<float> shard(static_cast<size_t>(batch * layout.max_local_seq() * row));
    for (int r = 0; r < ranks; ++r) {
      scatter_to_shard(layout, r, global.data(), shard.data(), batch, row * sizeof(float));
      gather_from_shard(layout, r, shard.data(), rebuilt.data(), batch, row * sizeof(float));
    }
    EXPECT_EQ(rebuilt, global) << "U=" << g.ulysses << " R=" << g.rings;
  }
}

TEST(HybridLayout, RejectsWhatDoesNotSplit) {
  // 2R = 4 for U x R = 3 x 2: 4094 % 4 != 0. 4096 splits: the groups' 2048 tokens go 683 +
  // 683 + 682 over U = 3.
  auto bad = Layout::make(LayoutKind::kHybridZigzag, 4094, 6, 3);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("seq 4094 is not divisible by 4"), std::string::npos)
      << bad.status().message();
  auto uneven = Layout::make(LayoutKind::kHybridZigzag, 4096, 6, 3);
  ASSERT_TRUE(uneven.is_ok());
  EXPECT_EQ(uneven->local_seq(0), 683);
  EXPECT_EQ(uneven->local_seq(2), 682);
  EXPECT_EQ(uneven->local_seq(5), 682);
  auto not_dividing = Layout::make(LayoutKind::kHybridZigzag, 48, 6, 4);
  ASSERT_FALSE(not_dividing.is_ok());
  EXPECT_NE(not_dividing.status().message().find("ulysses degree U = 4 must divide the 6 ranks"),
            std::string::npos)
      << not_dividing.status().message();
  EXPECT_FALSE(Layout::make(LayoutKind::kHybridZigzag, 48, 4, 0).is_ok());
  EXPECT_FALSE(Layout::make(LayoutKind::kZigzag, 48, 4, 2).is_ok());  // only hybrid groups ranks
}

}  // namespace
}  // namespace seqpar
