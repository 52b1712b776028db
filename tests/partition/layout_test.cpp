// Layout maps: segments, global <-> local round trips, balance of causal work, scatter/gather.
#include "partition/layout.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace seqpar {
namespace {

constexpr LayoutKind kKinds[] = {LayoutKind::kContiguous, LayoutKind::kStriped,
                                 LayoutKind::kZigzag};

TEST(Layout, EveryTokenHasExactlyOneOwnerAndMapsRoundTrip) {
  for (LayoutKind kind : kKinds) {
    for (int ranks : {1, 2, 3, 4, 6, 8}) {
      // Divisible by 2P for every P above; contiguous also takes S % P != 0.
      for (const int64_t seq :
           {int64_t{2 * 8 * 3 * 5}, int64_t{2 * 8 * 3 * 5 + 1}, int64_t{4093}}) {
        if (seq % (2 * ranks) != 0 && kind != LayoutKind::kContiguous) continue;
        SCOPED_TRACE(str_cat(layout_name(kind), " P=", ranks, " S=", seq));
        auto layout = Layout::make(kind, seq, ranks);
        ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
        std::vector<int> seen(static_cast<size_t>(seq), 0);
        for (int r = 0; r < ranks; ++r) {
          std::vector<int64_t> pos(static_cast<size_t>(layout->local_seq(r)));
          layout->positions(r, pos.data());
          EXPECT_LE(layout->max_local_seq() - layout->local_seq(r), 1);
          for (int64_t i = 0; i < layout->local_seq(r); ++i) {
            const int64_t g = layout->global_position(r, i);
            EXPECT_EQ(g, pos[static_cast<size_t>(i)]);
            ASSERT_GE(g, 0);
            ASSERT_LT(g, seq);
            ++seen[static_cast<size_t>(g)];
            const auto [owner, local] = layout->owner(g);
            EXPECT_EQ(owner, r);
            EXPECT_EQ(local, i);
          }
        }
        for (int64_t g = 0; g < seq; ++g)
          EXPECT_EQ(seen[static_cast<size_t>(g)], 1) << "token " << g;
      }
    }
  }
}

// Contiguous shards of S % P != 0: the first S % P ranks hold one token more, in order.
TEST(Layout, ContiguousSplitsUnevenSequencesByHand) {
  auto layout = Layout::make(LayoutKind::kContiguous, 4096, 6).value();  // 4096 = 6 * 682 + 4
  EXPECT_FALSE(layout.uniform());
  EXPECT_EQ(layout.max_local_seq(), 683);
  const int64_t want_len[] = {683, 683, 683, 683, 682, 682};
  const int64_t want_begin[] = {0, 683, 1366, 2049, 2732, 3414};
  for (int r = 0; r < 6; ++r) {
    EXPECT_EQ(layout.local_seq(r), want_len[r]) << "rank " << r;
    EXPECT_EQ(layout.segments(r)[0].global_offset, want_begin[r]) << "rank " << r;
  }
  EXPECT_EQ(layout.owner(2731), (std::pair<int, int64_t>{3, 682}));
  EXPECT_EQ(layout.owner(2732), (std::pair<int, int64_t>{4, 0}));
  EXPECT_EQ(layout.owner(4095), (std::pair<int, int64_t>{5, 681}));
  EXPECT_TRUE(Layout::make(LayoutKind::kContiguous, 4092, 6).value().uniform());
}

TEST(Layout, SegmentsMatchTheDefinitions) {
  auto zigzag = Layout::make(LayoutKind::kZigzag, 16, 4).value();  // chunks of 2
  auto segs = zigzag.segments(1);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].global_offset, 2);   // chunk 1
  EXPECT_EQ(segs[1].global_offset, 12);  // chunk 2P-1-1 = 6
  EXPECT_EQ(segs[1].local_begin, 2);
  auto striped = Layout::make(LayoutKind::kStriped, 16, 4).value();
  auto s = striped.segments(3);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].global_offset, 3);
  EXPECT_EQ(s[0].global_stride, 4);
  auto contiguous = Layout::make(LayoutKind::kContiguous, 16, 4).value();
  EXPECT_EQ(contiguous.segments(2)[0].global_offset, 8);
}

// Causal work of rank r = sum over its tokens of (position + 1). Zigzag and striped are balanced.
TEST(Layout, BalancedLayoutsBalanceCausalWork) {
  const int64_t seq = 1024;
  const int ranks = 8;
  for (LayoutKind kind : {LayoutKind::kStriped, LayoutKind::kZigzag}) {
    auto layout = Layout::make(kind, seq, ranks).value();
    int64_t lo = INT64_MAX, hi = 0;
    for (int r = 0; r < ranks; ++r) {
      std::vector<int64_t> pos(static_cast<size_t>(layout.local_seq(r)));
      layout.positions(r, pos.data());
      const int64_t work =
          std::accumulate(pos.begin(), pos.end(), int64_t{0}) + layout.local_seq(r);
      lo = std::min(lo, work);
      hi = std::max(hi, work);
    }
    EXPECT_LE(static_cast<double>(hi) / static_cast<double>(lo),
              kind == LayoutKind::kZigzag ? 1.0 : 1.06)
        << layout_name(kind);
  }
}

TEST(Layout, RejectsWhatDoesNotSplit) {
  auto bad_zigzag = Layout::make(LayoutKind::kZigzag, 4095, 4);
  ASSERT_FALSE(bad_zigzag.is_ok());
  EXPECT_EQ(bad_zigzag.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_zigzag.status().message().find("not divisible by 8"), std::string::npos)
      << bad_zigzag.status().message();
  EXPECT_FALSE(Layout::make(LayoutKind::kZigzag, 12, 4).is_ok());  // 12 % 8 != 0
  EXPECT_TRUE(Layout::make(LayoutKind::kStriped, 12, 4).is_ok());
  EXPECT_FALSE(Layout::make(LayoutKind::kStriped, 13, 4).is_ok());
  EXPECT_TRUE(Layout::make(LayoutKind::kContiguous, 13, 4).is_ok());  // shards 4, 3, 3, 3
  auto too_many = Layout::make(LayoutKind::kContiguous, 4, 8);
  ASSERT_FALSE(too_many.is_ok());
  EXPECT_NE(too_many.status().message().find("more ranks"), std::string::npos);
  EXPECT_FALSE(Layout::make(LayoutKind::kContiguous, 16, 0).is_ok());
}

TEST(Layout, ScatterThenGatherRebuildsTheGlobalTensor) {
  const int64_t batch = 2, row = 5;  // row = H * D floats
  for (LayoutKind kind : kKinds) {
    for (int ranks : {1, 2, 3, 4, 5}) {
      // 48: divisible by 2P except for P = 5; contiguous also splits 47 and 48 over 5.
      const int64_t seq = kind == LayoutKind::kContiguous ? 47 : 48;
      if (seq % (2 * ranks) != 0 && kind != LayoutKind::kContiguous) continue;
      std::vector<float> global(static_cast<size_t>(batch * seq * row));
      std::iota(global.begin(), global.end(), 1.0f);
      auto layout = Layout::make(kind, seq, ranks).value();
      std::vector<float> rebuilt(global.size(), -1.0f);
      for (int r = 0; r < ranks; ++r) {
        const int64_t local = layout.local_seq(r);
        std::vector<float> shard(static_cast<size_t>(batch * local * row));
        scatter_to_shard(layout, r, global.data(), shard.data(), batch, row * sizeof(float));
        // shard row (b, i) is global row (b, global_position(r, i))
        for (int64_t b = 0; b < batch; ++b) {
          for (int64_t i = 0; i < local; ++i) {
            const int64_t g = layout.global_position(r, i);
            EXPECT_EQ(shard[static_cast<size_t>((b * local + i) * row)],
                      global[static_cast<size_t>((b * seq + g) * row)]);
          }
        }
        gather_from_shard(layout, r, shard.data(), rebuilt.data(), batch, row * sizeof(float));
      }
      EXPECT_EQ(rebuilt, global) << layout_name(kind) << " P=" << ranks;
    }
  }
}

}  // namespace
}  // namespace seqpar
