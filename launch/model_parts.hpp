#pragma once
// Pieces the scheme cost models share (launch/cost_model.hpp): block-kernel time from kept
// tiles and the calibrated rate, a phase's step accumulator, and a layout's blocks cut into the
// kernel's tiles once.
#include <cstdint>
#include <vector>

#include "launch/calibration.hpp"
#include "launch/cost_model.hpp"
#include "launch/tile_count.hpp"
#include "partition/layout.hpp"

namespace seqpar {

// Block-kernel seconds. `work` is kept_work(): (query position, key) pairs over the computed
// tiles of one (batch, kv head); FLOPs are 4 * B * heads_q * D * work forward (ANCHORS.md) and
// 2.5x that backward, over the rate at the block's size. A block of Sq x Sk tokens is looked up
// as sqrt(Sq * Sk) tokens: the square block of the same area (equal for the schemes' square
// blocks; decode's 1 x L blocks are a guess nobody has checked).
struct ComputeModel {
  ComputeModel() = default;
  ComputeModel(const ComputeRate* rate_, int64_t batch_, int64_t head_dim_)
      : rate(rate_), batch(batch_), head_dim(head_dim_) {}

  const ComputeRate* rate = nullptr;
  int64_t batch = 1;
  int64_t head_dim = 0;

  static int64_t block_tokens(int64_t seq_q, int64_t seq_k);
  double forward_seconds(double work, int64_t heads_q, int64_t seq_q, int64_t seq_k) const;
  double backward_seconds(double work, int64_t heads_q, int64_t seq_q, int64_t seq_k) const;

 private:
  // The rates at the last block shape looked up: a scheme's blocks have one or two shapes, and
  // the models ask for millions of blocks at a thousand ranks.
  struct Rates {
    int64_t seq_q = -1, seq_k = -1;
    double forward = 0, backward = 0;
  };
  const Rates& rates_at(int64_t seq_q, int64_t seq_k) const;
  mutable Rates last_;
};

// Adds steps to a PhaseTime: overlapped steps cost max(compute, comm), the others their sum.
inline void add_step(PhaseTime& phase, double compute, double comm, bool overlapped) {
  phase.compute_seconds += compute;
  phase.comm_seconds += comm;
  phase.seconds += overlapped ? (compute > comm ? compute : comm) : compute + comm;
  phase.steps += 1;
}

inline PhaseTime operator+(PhaseTime a, const PhaseTime& b) {
  a.seconds += b.seconds;
  a.compute_seconds += b.compute_seconds;
  a.comm_seconds += b.comm_seconds;
  a.steps += b.steps;
  return a;
}

// Every rank's block of a layout cut into query tiles and key tiles.
struct TiledLayout {
  std::vector<std::vector<TileRun>> q;  // (ranks): query tiles of rank r's tokens
  std::vector<std::vector<TileRun>> k;  // (ranks): key tiles
  std::vector<int64_t> length;          // (ranks): tokens
  std::vector<int64_t> lo, hi;          // (ranks): smallest and largest position

  static TiledLayout of(const Layout& layout, const KernelTiles& tiles, int64_t group);
  // kept_work of rank q's queries against rank k's keys, with whole-block shortcuts.
  double work(MaskKind mask, int q_rank, int k_rank) const;
};

}  // namespace seqpar
