// Cost of Ulysses and the hybrid (see head_sharded_cost.hpp).
#include "launch/head_sharded_cost.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "launch/link_cost.hpp"
#include "launch/ring_cost.hpp"
#include "partition/head_split.hpp"
#include "runtime/head_all_to_all.hpp"

namespace seqpar {
namespace {

// The piece mixes of runtime/head_exchange.cpp: forward in Q, K, V; forward out O, LSE;
// backward in Q, dO, K, V, LSE, delta (Ulysses) or Q, dO, O, K, V, LSE (hybrid); backward out
// dQ, dK, dV.
constexpr PieceMix kForwardIn{1, 2, 0};
constexpr PieceMix kForwardOut{1, 0, 1};
constexpr PieceMix kBackwardInDelta{2, 2, 2};
constexpr PieceMix kBackwardInOut{3, 2, 1};
constexpr PieceMix kBackwardOut{1, 2, 0};

struct ExchangeCost {
  double seconds = 0;     // the slowest member
  int64_t bytes_max = 0;  // the busiest member's sends (its own piece excluded)
  int64_t send_total_max = 0;
  int64_t recv_total_max = 0;
};

// One all-to-all among `members` (global ranks), member m holding slices[m] and tokens[m].
StatusOr<ExchangeCost> exchange_cost(const Topology& topo, const AttentionProblem& p,
                                     const std::vector<int>& members,
                                     const std::vector<int64_t>& tokens,
                                     const std::vector<HeadSlice>& slices, PieceMix mix,
                                     PieceDirection direction) {
  ExchangeCost cost;
  for (size_t me = 0; me < members.size(); ++me) {
    SEQPAR_ASSIGN_OR_RETURN(
        const AllToAllSplit split,
        head_all_to_all_split(p, tokens, slices, static_cast<int>(me), mix, direction));
    LinkLoad load;
    int64_t sent = 0;
    for (size_t peer = 0; peer < members.size(); ++peer) {
      if (peer == me) continue;
      load.add(topo, members[me], members[peer], static_cast<double>(split.send_bytes[peer]), 0);
      sent += static_cast<int64_t>(split.send_bytes[peer]);
    }
    load.intra_messages = load.intra_bytes > 0 ? 1 : 0;  // grouped: one latency per class
    load.inter_messages = load.inter_bytes > 0 ? 1 : 0;
    cost.seconds = std::max(cost.seconds, load.seconds(topo));
    cost.bytes_max = std::max(cost.bytes_max, sent);
    cost.send_total_max = std::max(cost.send_total_max, static_cast<int64_t>(split.send_total()));
    cost.recv_total_max = std::max(cost.recv_total_max, static_cast<int64_t>(split.recv_total()));
  }
  return cost;
}

// `forward`: one of the forward all-to-alls (what a forward-only plan's buffers hold too).
void note_buffers(HeadShardedCost& cost, const ExchangeCost& x, bool forward) {
  cost.exchange_send_max = std::max(cost.exchange_send_max, x.send_total_max);
  cost.exchange_recv_max = std::max(cost.exchange_recv_max, x.recv_total_max);
  if (!forward) return;
  cost.exchange_send_forward_max = std::max(cost.exchange_send_forward_max, x.send_total_max);
  cost.exchange_recv_forward_max = std::max(cost.exchange_recv_forward_max, x.recv_total_max);
}

}  // namespace

StatusOr<HeadShardedCost> ulysses_cost(const ModelInputs& inputs, const KernelTiles& tiles) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, ranks));
  SEQPAR_ASSIGN_OR_RETURN(const Layout layout, Layout::make(LayoutKind::kContiguous, p.seq, ranks));
  std::vector<int64_t> tokens(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) tokens[static_cast<size_t>(r)] = layout.local_seq(r);
  const std::vector<int> members = rank_range(0, ranks);

  HeadShardedCost cost;
  SEQPAR_ASSIGN_OR_RETURN(
      const ExchangeCost fin,
      exchange_cost(topo, p, members, tokens, slices, kForwardIn, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(
      const ExchangeCost fout,
      exchange_cost(topo, p, members, tokens, slices, kForwardOut, PieceDirection::kToTokens));
  SEQPAR_ASSIGN_OR_RETURN(
      const ExchangeCost bin,
      exchange_cost(topo, p, members, tokens, slices, kBackwardInDelta, PieceDirection::kToHeads));
  SEQPAR_ASSIGN_OR_RETURN(
      const ExchangeCost bout,
      exchange_cost(topo, p, members, tokens, slices, kBackwardOut, PieceDirection::kToTokens));
  for (const ExchangeCost* x : {&fin, &fout, &bin, &bout})
    note_buffers(cost, *x, x == &fin || x == &fout);

  // Compute: each rank's heads over the whole sequence, one S x S block; the slowest slice.
  SEQPAR_ASSIGN_OR_RETURN(const Layout whole, Layout::make(LayoutKind::kContiguous, p.seq, 1));
  const ComputeModel compute{&inputs.rate, p.batch, p.head_dim};
  std::map<std::pair<int64_t, int64_t>, double> work_of;  // (q heads, kv heads) -> work
  double fwd = 0, bwd = 0;
  for (const HeadSlice& s : slices) {
    const auto key = std::make_pair(s.q_count, s.kv_count);
    if (!work_of.count(key)) {
      work_of[key] = TiledLayout::of(whole, tiles, s.q_count / s.kv_count).work(p.mask, 0, 0);
    }
    fwd = std::max(fwd, compute.forward_seconds(work_of[key], s.q_count, p.seq, p.seq));
    bwd = std::max(bwd, compute.backward_seconds(work_of[key], s.q_count, p.seq, p.seq));
    cost.heads_q_max = std::max(cost.heads_q_max, s.q_count);
    cost.heads_kv_max = std::max(cost.heads_kv_max, s.kv_count);
  }
  add_step(cost.forward, 0, fin.seconds, false);
  add_step(cost.forward, fwd, 0, false);
  add_step(cost.forward, 0, fout.seconds, false);
  add_step(cost.backward, 0, bin.seconds, false);
  add_step(cost.backward, bwd, 0, false);
  add_step(cost.backward, 0, bout.seconds, false);
  cost.forward_bytes_max = fin.bytes_max + fout.bytes_max;  // the busiest rank is the same one
  cost.backward_bytes_max = bin.bytes_max + bout.bytes_max;
  return cost;
}

StatusOr<HeadShardedCost> hybrid_cost(const ModelInputs& inputs, const KernelTiles& tiles,
                                      int ulysses) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  const int rings = ranks / ulysses;
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, ulysses));
  SEQPAR_ASSIGN_OR_RETURN(const Layout layout,
                          Layout::make(LayoutKind::kHybridZigzag, p.seq, ranks, ulysses));
  SEQPAR_ASSIGN_OR_RETURN(const Layout ring_layout,
                          Layout::make(LayoutKind::kZigzag, p.seq, rings));

  HeadShardedCost cost;
  // The group all-to-alls, every group; the slowest rank of any group.
  ExchangeCost fin, fout, bin, bout;
  std::vector<int64_t> fwd_sent(static_cast<size_t>(ranks), 0), bwd_sent(fwd_sent);
  for (int g = 0; g < rings; ++g) {
    const std::vector<int> members = rank_range(g * ulysses, ulysses);
    std::vector<int64_t> tokens(static_cast<size_t>(ulysses));
    for (int u = 0; u < ulysses; ++u)
      tokens[static_cast<size_t>(u)] = layout.local_seq(g * ulysses + u);
    struct Stage {
      ExchangeCost* total;
      PieceMix mix;
      PieceDirection direction;
    };
    for (const Stage& stage : {Stage{&fin, kForwardIn, PieceDirection::kToHeads},
                               Stage{&fout, kForwardOut, PieceDirection::kToTokens},
                               Stage{&bin, kBackwardInOut, PieceDirection::kToHeads},
                               Stage{&bout, kBackwardOut, PieceDirection::kToTokens}}) {
      SEQPAR_ASSIGN_OR_RETURN(const ExchangeCost x, exchange_cost(topo, p, members, tokens, slices,
                                                                  stage.mix, stage.direction));
      stage.total->seconds = std::max(stage.total->seconds, x.seconds);
      stage.total->bytes_max = std::max(stage.total->bytes_max, x.bytes_max);
      note_buffers(cost, x, stage.total == &fin || stage.total == &fout);
    }
  }

  // The zigzag ring of each place u over the R groups, on u's heads; the slowest ring.
  RingCost slowest;
  int64_t ring_fwd_bytes = 0, ring_bwd_bytes = 0;
  for (int u = 0; u < ulysses; ++u) {
    const HeadSlice& s = slices[static_cast<size_t>(u)];
    RingCostInput ring;
    ring.topology = &topo;
    ring.compute = ComputeModel{&inputs.rate, p.batch, p.head_dim};
    ring.tiles = tiles;
    ring.layout = &ring_layout;
    ring.heads_q = s.q_count;
    ring.heads_kv = s.kv_count;
    ring.mask = p.mask;
    ring.dtype_bytes = static_cast<int64_t>(dtype_size(p.dtype));
    ring.members = rank_range(u, rings, ulysses);
    const RingCost c = ring_engine_cost(ring);
    if (c.forward.seconds > slowest.forward.seconds) slowest.forward = c.forward;
    if (c.backward.seconds > slowest.backward.seconds) slowest.backward = c.backward;
    ring_fwd_bytes = std::max(ring_fwd_bytes, c.forward_bytes_max);
    ring_bwd_bytes = std::max(ring_bwd_bytes, c.backward_bytes_max);
    cost.heads_q_max = std::max(cost.heads_q_max, s.q_count);
    cost.heads_kv_max = std::max(cost.heads_kv_max, s.kv_count);
  }
  add_step(cost.forward, 0, fin.seconds, false);
  cost.forward = cost.forward + slowest.forward;
  add_step(cost.forward, 0, fout.seconds, false);
  add_step(cost.backward, 0, bin.seconds, false);
  cost.backward = cost.backward + slowest.backward;
  add_step(cost.backward, 0, bout.seconds, false);
  cost.forward_bytes_max = fin.bytes_max + fout.bytes_max + ring_fwd_bytes;
  cost.backward_bytes_max = bin.bytes_max + bout.bytes_max + ring_bwd_bytes;
  return cost;
}

}  // namespace seqpar
