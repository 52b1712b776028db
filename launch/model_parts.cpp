// Shared pieces of the scheme cost models (see model_parts.hpp).
#include "launch/model_parts.hpp"

#include <algorithm>
#include <cmath>

namespace seqpar {

int64_t ComputeModel::block_tokens(int64_t seq_q, int64_t seq_k) {
  const double area = static_cast<double>(seq_q) * static_cast<double>(seq_k);
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(std::sqrt(area))));
}

const ComputeModel::Rates& ComputeModel::rates_at(int64_t seq_q, int64_t seq_k) const {
  if (last_.seq_q != seq_q || last_.seq_k != seq_k) {
    const int64_t tokens = block_tokens(seq_q, seq_k);
    last_ = {seq_q, seq_k, rate->forward_at(tokens), rate->backward_at(tokens)};
  }
  return last_;
}

double ComputeModel::forward_seconds(double work, int64_t heads_q, int64_t seq_q,
                                     int64_t seq_k) const {
  if (work <= 0) return 0;
  const double flops = 4.0 * static_cast<double>(batch * heads_q * head_dim) * work;
  return flops / rates_at(seq_q, seq_k).forward;
}

double ComputeModel::backward_seconds(double work, int64_t heads_q, int64_t seq_q,
                                      int64_t seq_k) const {
  if (work <= 0) return 0;
  const double flops = 2.5 * 4.0 * static_cast<double>(batch * heads_q * head_dim) * work;
  return flops / rates_at(seq_q, seq_k).backward;
}

TiledLayout TiledLayout::of(const Layout& layout, const KernelTiles& tiles, int64_t group) {
  TiledLayout t;
  const size_t n = static_cast<size_t>(layout.ranks());
  t.q.resize(n);
  t.k.resize(n);
  t.length.resize(n);
  t.lo.resize(n);
  t.hi.resize(n);
  const int64_t tile_q = tiles.query_positions(group);
  for (int r = 0; r < layout.ranks(); ++r) {
    const size_t i = static_cast<size_t>(r);
    const std::vector<Segment> segments = layout.segments(r);
    t.length[i] = layout.local_seq(r);
    t.q[i] = tile_runs(segments, t.length[i], tile_q);
    t.k[i] = tile_runs(segments, t.length[i], tiles.keys);
    t.lo[i] = t.q[i].empty() ? 0 : t.q[i].front().lo;
    t.hi[i] = t.lo[i];
    for (const TileRun& run : t.q[i]) {
      t.lo[i] = std::min(t.lo[i], run.lo);
      t.hi[i] = std::max(t.hi[i], run.hi + run.step * (run.count - 1));
    }
  }
  return t;
}

double TiledLayout::work(MaskKind mask, int q_rank, int k_rank) const {
  const size_t qi = static_cast<size_t>(q_rank), ki = static_cast<size_t>(k_rank);
  const double whole = static_cast<double>(length[qi]) * static_cast<double>(length[ki]);
  if (mask == MaskKind::kFull) return whole;
  if (lo[ki] > hi[qi]) return 0;       // every key after every query: all tiles skipped
  if (hi[ki] <= lo[qi]) return whole;  // every key before every query: all tiles computed
  return kept_work(mask, q[qi], k[ki]);
}

}  // namespace seqpar
