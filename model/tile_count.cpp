// Closed-form tile counts of the block kernel (see tile_count.hpp).
#include "model/tile_count.hpp"

#include <algorithm>
#include <utility>

namespace seqpar {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {  // b > 0; any sign of a
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

int64_t floor_div(int64_t a, int64_t b) {  // b > 0; any sign of a
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// The tile of local indices [begin, end) that is not a whole tile inside one segment.
TileRun single_tile(const std::vector<Segment>& segments, int64_t begin, int64_t end) {
  TileRun run{0, 0, 0, 1, end - begin};
  bool first = true;
  for (const Segment& s : segments) {
    const int64_t a = std::max(begin, s.local_begin);
    const int64_t b = std::min(end, s.local_begin + s.length);
    if (a >= b) continue;
    const int64_t p0 = s.global_offset + s.global_stride * (a - s.local_begin);
    const int64_t p1 = s.global_offset + s.global_stride * (b - 1 - s.local_begin);
    const int64_t lo = std::min(p0, p1), hi = std::max(p0, p1);
    run.lo = first ? lo : std::min(run.lo, lo);
    run.hi = first ? hi : std::max(run.hi, hi);
    first = false;
  }
  return run;
}

}  // namespace

std::vector<TileRun> tile_runs(const std::vector<Segment>& segments, int64_t length, int64_t tile) {
  std::vector<TileRun> runs;
  size_t seg = 0;
  for (int64_t i = 0; i < length;) {
    while (seg < segments.size() && segments[seg].local_begin + segments[seg].length <= i) ++seg;
    if (seg == segments.size()) break;
    const Segment& s = segments[seg];
    const int64_t seg_end = s.local_begin + s.length;
    if (s.global_stride > 0 && i >= s.local_begin && i + tile <= seg_end) {
      const int64_t count = (seg_end - i) / tile;
      const int64_t lo = s.global_offset + s.global_stride * (i - s.local_begin);
      runs.push_back({lo, lo + s.global_stride * (tile - 1), s.global_stride * tile, count, tile});
      i += count * tile;
    } else {
      runs.push_back(single_tile(segments, i, std::min(i + tile, length)));
      i += tile;
    }
  }
  return runs;
}

uint64_t floor_sum(uint64_t n, uint64_t m, uint64_t a, uint64_t b) {
  uint64_t sum = 0;
  while (true) {
    if (a >= m) {
      sum += (n * (n - 1) / 2) * (a / m);
      a %= m;
    }
    if (b >= m) {
      sum += n * (b / m);
      b %= m;
    }
    const uint64_t y_max = a * n + b;
    if (y_max < m) break;
    n = y_max / m;
    b = y_max % m;
    std::swap(m, a);
  }
  return sum;
}

int64_t kept_tile_pairs(MaskKind mask, const TileRun& q, const TileRun& k) {
  if (q.count <= 0 || k.count <= 0) return 0;
  if (mask == MaskKind::kFull) return q.count * k.count;
  // Causal: pair (t, u) is computed iff k.lo + k.step * u <= q.hi + q.step * t.
  const int64_t n = q.count, m = k.count;
  const int64_t x = q.hi - k.lo;  // slack at t = 0, u = 0
  if (k.step == 0 || m == 1) {    // one key tile: the q tiles with slack >= 0
    if (q.step == 0 || n == 1) return x >= 0 ? n : 0;
    const int64_t first = std::clamp<int64_t>(ceil_div(-x, q.step), 0, n);
    return n - first;
  }
  // Key tiles kept for query tile t: clamp(floor((x + q.step * t) / k.step) + 1, 0, m).
  if (q.step == 0 || n == 1) {
    return n * std::clamp<int64_t>(floor_div(x, k.step) + 1, 0, m);
  }
  const int64_t a = q.step, b = k.step;
  const int64_t t1 = std::clamp<int64_t>(x >= 0 ? 0 : ceil_div(-x, a), 0, n);   // first >= 1
  const int64_t t2 = std::clamp<int64_t>(ceil_div((m - 1) * b - x, a), t1, n);  // first == m
  const int64_t middle = t2 - t1;
  int64_t sum = (n - t2) * m;
  if (middle > 0) {
    sum += middle + static_cast<int64_t>(
                        floor_sum(static_cast<uint64_t>(middle), static_cast<uint64_t>(b),
                                  static_cast<uint64_t>(a), static_cast<uint64_t>(x + a * t1)));
  }
  return sum;
}

double kept_work(MaskKind mask, const std::vector<TileRun>& q, const std::vector<TileRun>& k) {
  double work = 0;
  for (const TileRun& qr : q) {
    for (const TileRun& kr : k) {
      work += static_cast<double>(kept_tile_pairs(mask, qr, kr)) * static_cast<double>(qr.tokens) *
              static_cast<double>(kr.tokens);
    }
  }
  return work;
}

}  // namespace seqpar
