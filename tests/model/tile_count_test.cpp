// The closed-form tile counts of model/tile_count.hpp against a tile-by-tile walk of the block
// kernel's loops (attention/block_params.hpp's block_may_have_work on each tile pair), for every
// layout, uneven shards, odd tile sizes and both masks.
#include "model/tile_count.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace seqpar {
namespace {

// What the kernel does: walk query tiles of tile_q local indices and key tiles of tile_k, skip a
// pair when the mask keeps nothing in it, count query tokens x key tokens of the others.
double brute_force_work(MaskKind mask, const Layout& layout, int q_rank, int k_rank, int64_t tile_q,
                        int64_t tile_k) {
  std::vector<int64_t> qp(static_cast<size_t>(layout.local_seq(q_rank)));
  std::vector<int64_t> kp(static_cast<size_t>(layout.local_seq(k_rank)));
  layout.positions(q_rank, qp.data());
  layout.positions(k_rank, kp.data());
  const PositionMap qm = PositionMap::indexed(qp.data()), km = PositionMap::indexed(kp.data());
  const int64_t sq = static_cast<int64_t>(qp.size()), sk = static_cast<int64_t>(kp.size());
  double work = 0;
  for (int64_t q0 = 0; q0 < sq; q0 += tile_q) {
    const int64_t nq = std::min(tile_q, sq - q0);
    const PositionRange qr = position_range(qm, q0, q0 + nq);
    for (int64_t k0 = 0; k0 < sk; k0 += tile_k) {
      const int64_t nk = std::min(tile_k, sk - k0);
      if (block_may_have_work(mask, qr, position_range(km, k0, k0 + nk))) {
        work += static_cast<double>(nq * nk);
      }
    }
  }
  return work;
}

double closed_form_work(MaskKind mask, const Layout& layout, int q_rank, int k_rank, int64_t tile_q,
                        int64_t tile_k) {
  return kept_work(mask, tile_runs(layout.segments(q_rank), layout.local_seq(q_rank), tile_q),
                   tile_runs(layout.segments(k_rank), layout.local_seq(k_rank), tile_k));
}

TEST(FloorSum, MatchesTheSum) {
  for (uint64_t n = 0; n < 20; ++n) {
    for (uint64_t m = 1; m < 9; ++m) {
      for (uint64_t a = 0; a < 12; ++a) {
        for (uint64_t b = 0; b < 12; ++b) {
          uint64_t sum = 0;
          for (uint64_t i = 0; i < n; ++i) sum += (a * i + b) / m;
          ASSERT_EQ(floor_sum(n, m, a, b), sum) << n << " " << m << " " << a << " " << b;
        }
      }
    }
  }
}

struct LayoutCase {
  LayoutKind kind;
  int64_t seq;
  int ranks;
  int ulysses;
};

TEST(TileCount, EqualsTheKernelsTileWalkOnEveryLayout) {
  const std::vector<LayoutCase> cases = {
      {LayoutKind::kContiguous, 1024, 4, 1},   {LayoutKind::kContiguous, 1000, 3, 1},
      {LayoutKind::kContiguous, 1031, 5, 1},   {LayoutKind::kStriped, 1024, 4, 1},
      {LayoutKind::kStriped, 960, 6, 1},       {LayoutKind::kZigzag, 1024, 4, 1},
      {LayoutKind::kZigzag, 1000, 5, 1},       {LayoutKind::kZigzag, 1200, 3, 1},
      {LayoutKind::kHybridZigzag, 1024, 4, 2}, {LayoutKind::kHybridZigzag, 1200, 6, 3},
  };
  const std::vector<std::pair<int64_t, int64_t>> tiles = {
      {64, 64}, {16, 64}, {37, 50}, {128, 128}, {1, 64}};
  int checked = 0;
  for (const LayoutCase& c : cases) {
    StatusOr<Layout> made = Layout::make(c.kind, c.seq, c.ranks, c.ulysses);
    if (!made.is_ok()) continue;  // a split this layout does not take (the runtime's rule)
    const Layout& layout = made.value();
    for (const auto& [tq, tk] : tiles) {
      for (MaskKind mask : {MaskKind::kCausal, MaskKind::kFull}) {
        for (int q = 0; q < c.ranks; ++q) {
          for (int k = 0; k < c.ranks; ++k) {
            ASSERT_EQ(closed_form_work(mask, layout, q, k, tq, tk),
                      brute_force_work(mask, layout, q, k, tq, tk))
                << layout_name(c.kind) << " S=" << c.seq << " P=" << c.ranks << " tiles " << tq
                << "x" << tk << " " << mask_name(mask) << " block (" << q << ", " << k << ")";
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

// Causal skipping shows: the zigzag diagonal block keeps about half its tiles, a contiguous
// block above the diagonal none, one below all.
TEST(TileCount, CausalStructure) {
  const Layout ring = Layout::make(LayoutKind::kContiguous, 4096, 4).value();
  EXPECT_EQ(closed_form_work(MaskKind::kCausal, ring, 2, 1, 64, 64), 1024.0 * 1024.0);
  EXPECT_EQ(closed_form_work(MaskKind::kCausal, ring, 1, 2, 64, 64), 0.0);
  // Diagonal: 16 x 16 tiles, 136 kept (the lower triangle with its diagonal).
  EXPECT_EQ(closed_form_work(MaskKind::kCausal, ring, 1, 1, 64, 64), 136.0 * 64 * 64);
}

}  // namespace
}  // namespace seqpar
