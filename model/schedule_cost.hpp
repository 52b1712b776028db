#pragma once
// The cost model's reading of a scheme's schedule (runtime/schedule.hpp): every scheme is
// costed by walking the steps its own descriptor lists, so the model has no per-scheme code.
//   step time = max(compute, comm)   for a step whose transfers overlap its compute
//             = compute + comm       for the others
//   compute   = the slowest rank's block-kernel seconds that step: each block's kept tiles
//               (exact, from the layouts' positions and the kernel's tile skipping, in closed
//               form) times a full tile's FLOPs, over the calibrated rate at the block's size
//   comm      = the slowest rank's transfers that step: its point-to-point and all-to-all bytes
//               per link class (model/link_cost.hpp; an all-to-all pays one latency per class it
//               crosses), plus its collectives, one after another
// A layout's blocks are cut into the kernel's tiles once per (layout, GQA group).
#include <cstdint>
#include <vector>

#include "model/calibration.hpp"
#include "model/cost_model.hpp"
#include "model/link_cost.hpp"
#include "model/tile_count.hpp"
#include "partition/layout.hpp"
#include "runtime/schedule.hpp"

namespace seqpar {

// Block-kernel seconds. `work` is kept_work(): (query position, key) pairs over the computed
// tiles of one (batch, kv head); FLOPs are 4 * B * heads_q * D * work forward
// (docs/reference_figures.md) and 2.5x that backward, over the rate at the block's size. A block of
// Sq x Sk tokens is looked up as sqrt(Sq * Sk) tokens: the square block of the same area (equal for
// the schemes' square blocks; decode's 1 x L blocks are a guess nobody has checked).
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

// The kept-tile work of layouts' block pairs, each pair counted once and kept for the other
// passes of the same candidate (a forward and a backward walk the same blocks).
class TileWork {
 public:
  TileWork(const KernelTiles& tiles, MaskKind mask) : tiles_(tiles), mask_(mask) {}
  // kept_work of shard q_shard's queries against shard k_shard's keys of `layout`, for a GQA
  // group of `group` query heads per kv head.
  double work(const Layout& layout, int64_t group, int q_shard, int k_shard);

 private:
  struct Entry {
    Layout layout;
    int64_t group;
    TiledLayout tiled;
    std::vector<double> memo;  // (P, P): the work, or -1 until counted
  };
  KernelTiles tiles_;
  MaskKind mask_;
  std::vector<Entry> entries_;  // one per (layout, group) seen: a scheme has one or two
};

// One pass of a schedule on a topology: its predicted time and each rank's calls and bytes.
class ScheduleCost final : public ScheduleSink {
 public:
  // `backward`: the pass runs backward kernels (2.5x the forward FLOPs, the backward rate).
  // `work`: the tile counts, shared with the candidate's other passes.
  ScheduleCost(const Topology& topology, const ComputeModel& compute, TileWork& work, bool backward,
               int ranks);

  // The time of the steps so far (the last one finished).
  PhaseTime time();
  // Each step so far: its slowest rank's compute and transfers, and how they combine.
  struct Step {
    double compute = 0;
    double comm = 0;
    bool overlapped = false;
    bool computes = false;  // any rank ran a block kernel
  };
  const std::vector<Step>& steps() {
    finish_step();
    return steps_;
  }
  const std::vector<CommVolume>& volumes() const { return volumes_.volumes(); }  // (ranks)

  int add_layout(const Layout& layout) override;
  void step(StepOverlap overlap) override;
  void compute(int rank, const BlockWork& block) override;
  void exchange(int rank, std::span<const Send> sends) override;
  void all_to_all(int rank, RankGroup group, std::span<const Send> sends) override;
  void collective(int rank, Collective kind, RankGroup group, int64_t bytes) override;

 private:
  void finish_step();
  void touch(int rank);

  const Topology& topology_;
  ComputeModel compute_model_;
  TileWork& work_;
  bool backward_;
  CommVolumeSink volumes_;
  std::vector<Layout> layouts_;
  // The current step, per rank: block-kernel seconds, link load, collective seconds.
  bool in_step_ = false;
  StepOverlap overlap_ = StepOverlap::kSerial;
  std::vector<double> compute_seconds_;
  std::vector<LinkLoad> load_;
  std::vector<double> collective_seconds_;
  std::vector<int> touched_;  // ranks with anything this step
  std::vector<char> is_touched_;
  PhaseTime time_;
  std::vector<Step> steps_;
  bool step_computes_ = false;
  // The last collective costed: the members of a group all ask for the same one.
  struct LastCollective {
    Collective kind = Collective::kAllGather;
    RankGroup group;
    int64_t bytes = -1;  // none yet
    double seconds = 0;
  } last_collective_;
};

}  // namespace seqpar
