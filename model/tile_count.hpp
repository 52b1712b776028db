#pragma once
// The block kernel's work under the mask, counted in closed form. A block of queries and a block
// of keys, each given as the affine segments of a layout (partition/layout.hpp), are cut into the
// kernel's tiles (KernelTiles: query positions x keys, over the local index as the kernel walks
// it); a tile pair is computed when the mask keeps any of its pairs (block_may_have_work) and
// skipped otherwise. kept_work() sums query tokens x key tokens over the computed tile pairs, so
// partial tiles at segment joins and skipped tiles show; it is O(segments^2 * log) per block
// pair (a floor-sum per pair of tile runs), never per token pair.
#include <cstdint>
#include <vector>

#include "attention/block_params.hpp"
#include "partition/layout.hpp"

namespace seqpar {

// `count` consecutive tiles of `tokens` tokens each; tile t holds positions in
// [lo + step * t, hi + step * t]. A tile that straddles a segment join or ends the block short
// is a run of one (step 0) with its own extremes.
struct TileRun {
  int64_t lo = 0;
  int64_t hi = 0;
  int64_t step = 0;
  int64_t count = 0;
  int64_t tokens = 0;
};

// A block cut into tiles of `tile` local indices: segments in local order covering [0, length).
std::vector<TileRun> tile_runs(const std::vector<Segment>& segments, int64_t length, int64_t tile);

// sum over i in [0, n) of floor((a * i + b) / m), for n, a, b >= 0 and m > 0.
uint64_t floor_sum(uint64_t n, uint64_t m, uint64_t a, uint64_t b);

// Computed tile pairs of one run against another, under `mask` (positions ascending in both).
int64_t kept_tile_pairs(MaskKind mask, const TileRun& q, const TileRun& k);

// Sum over computed tile pairs of query tokens x key tokens: the work of one (batch, kv head)
// of the block in units of (query position, key) pairs the kernel evaluates.
double kept_work(MaskKind mask, const std::vector<TileRun>& q, const std::vector<TileRun>& k);

}  // namespace seqpar
