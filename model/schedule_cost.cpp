// The cost of a schedule's steps (see schedule_cost.hpp).
#include "model/schedule_cost.hpp"

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

double TileWork::work(const Layout& layout, int64_t group, int q_shard, int k_shard) {
  auto same = [&](const Entry& e) {
    return e.group == group && e.layout.kind() == layout.kind() && e.layout.seq() == layout.seq() &&
           e.layout.ranks() == layout.ranks() &&
           e.layout.ulysses_degree() == layout.ulysses_degree();
  };
  auto it = std::find_if(entries_.begin(), entries_.end(), same);
  if (it == entries_.end()) {
    const size_t pairs = static_cast<size_t>(layout.ranks()) * static_cast<size_t>(layout.ranks());
    entries_.push_back(
        {layout, group, TiledLayout::of(layout, tiles_, group), std::vector<double>(pairs, -1.0)});
    it = entries_.end() - 1;
  }
  double& memo = it->memo[static_cast<size_t>(q_shard) * static_cast<size_t>(layout.ranks()) +
                          static_cast<size_t>(k_shard)];
  if (memo < 0) memo = it->tiled.work(mask_, q_shard, k_shard);
  return memo;
}

ScheduleCost::ScheduleCost(const Topology& topology, const ComputeModel& compute, TileWork& work,
                           bool backward, int ranks)
    : topology_(topology),
      compute_model_(compute),
      work_(work),
      backward_(backward),
      volumes_(ranks),
      compute_seconds_(static_cast<size_t>(ranks), 0.0),
      load_(static_cast<size_t>(ranks)),
      collective_seconds_(static_cast<size_t>(ranks), 0.0),
      is_touched_(static_cast<size_t>(ranks), 0) {}

int ScheduleCost::add_layout(const Layout& layout) {
  layouts_.push_back(layout);
  return volumes_.add_layout(layout);
}

void ScheduleCost::touch(int rank) {
  char& flag = is_touched_[static_cast<size_t>(rank)];
  if (!flag) {
    flag = 1;
    touched_.push_back(rank);
  }
}

void ScheduleCost::finish_step() {
  if (!in_step_) return;
  double compute = 0, comm = 0;
  for (const int r : touched_) {
    const size_t at = static_cast<size_t>(r);
    compute = std::max(compute, compute_seconds_[at]);
    comm = std::max(comm, load_[at].seconds(topology_) + collective_seconds_[at]);
    compute_seconds_[at] = 0;
    load_[at] = {};
    collective_seconds_[at] = 0;
    is_touched_[at] = 0;
  }
  touched_.clear();
  const bool overlapped = overlap_ == StepOverlap::kOverlapped;
  add_step(time_, compute, comm, overlapped);
  steps_.push_back({compute, comm, overlapped, step_computes_});
  step_computes_ = false;
  in_step_ = false;
}

void ScheduleCost::step(StepOverlap overlap) {
  finish_step();
  in_step_ = true;
  overlap_ = overlap;
}

PhaseTime ScheduleCost::time() {
  finish_step();
  return time_;
}

void ScheduleCost::compute(int rank, const BlockWork& block) {
  double work = 0;
  int64_t seq_q = block.q_tokens, seq_k = block.k_tokens;
  if (block.layout == BlockWork::kDense) {
    work = static_cast<double>(block.q_tokens) * static_cast<double>(block.k_tokens);
  } else {
    const Layout& layout = layouts_[static_cast<size_t>(block.layout)];
    work = work_.work(layout, block.heads_q / block.heads_kv, block.q_shard, block.k_shard);
    seq_q = layout.local_seq(block.q_shard);
    seq_k = layout.local_seq(block.k_shard);
  }
  touch(rank);
  step_computes_ = true;
  compute_seconds_[static_cast<size_t>(rank)] +=
      backward_ ? compute_model_.backward_seconds(work, block.heads_q, seq_q, seq_k)
                : compute_model_.forward_seconds(work, block.heads_q, seq_q, seq_k);
}

void ScheduleCost::exchange(int rank, std::span<const Send> sends) {
  volumes_.exchange(rank, sends);
  touch(rank);
  LinkLoad& load = load_[static_cast<size_t>(rank)];
  for (const Send& s : sends) load.add(topology_, rank, s.peer, static_cast<double>(s.bytes));
}

void ScheduleCost::all_to_all(int rank, RankGroup group, std::span<const Send> sends) {
  volumes_.all_to_all(rank, group, sends);
  touch(rank);
  LinkLoad call;  // grouped: one latency per link class it crosses
  for (const Send& s : sends) call.add(topology_, rank, s.peer, static_cast<double>(s.bytes), 0);
  call.intra_messages = call.intra_bytes > 0 ? 1 : 0;
  call.inter_messages = call.inter_bytes > 0 ? 1 : 0;
  load_[static_cast<size_t>(rank)] += call;
}

namespace {

double collective_seconds(const Topology& topology, Collective kind, RankGroup group,
                          double bytes) {
  switch (kind) {
    case Collective::kAllGather:
      return ring_all_gather_seconds(topology, group, bytes);
    case Collective::kReduceScatter:
      return ring_reduce_scatter_seconds(topology, group, bytes);
    case Collective::kAllReduce:
      break;
  }
  return all_reduce_seconds(topology, group, bytes);
}

}  // namespace

void ScheduleCost::collective(int rank, Collective kind, RankGroup group, int64_t bytes) {
  volumes_.collective(rank, kind, group, bytes);
  touch(rank);
  LastCollective& last = last_collective_;
  const bool same = last.kind == kind && last.bytes == bytes && last.group.first == group.first &&
                    last.group.count == group.count && last.group.stride == group.stride;
  if (!same) {
    const double b = static_cast<double>(bytes);
    last = {kind, group, bytes, collective_seconds(topology_, kind, group, b)};
  }
  collective_seconds_[static_cast<size_t>(rank)] += last.seconds;
}

}  // namespace seqpar
