// Cost of tree attention and of tree / ring decoding (see tree_cost.hpp).
#include "launch/tree_cost.hpp"

#include <algorithm>

#include "launch/link_cost.hpp"
#include "runtime/tree_decode.hpp"

namespace seqpar {
namespace {

// ranks_per_node as plan_config_for() gives it to the runtime (0: flat).
int plan_ranks_per_node(const Topology& topo) { return topo.nodes > 1 ? topo.ranks_per_node : 0; }

}  // namespace

StatusOr<TreeCost> tree_training_cost(const ModelInputs& inputs, const KernelTiles& tiles) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  SEQPAR_ASSIGN_OR_RETURN(const Layout layout, Layout::make(LayoutKind::kContiguous, p.seq, ranks));
  const TiledLayout tiled = TiledLayout::of(layout, tiles, p.heads_q / p.heads_kv);
  const ComputeModel compute{&inputs.rate, p.batch, p.head_dim};
  const double e = static_cast<double>(dtype_size(p.dtype));
  const double local = static_cast<double>(p.batch * layout.max_local_seq());
  const double q = local * static_cast<double>(p.heads_q * p.head_dim);  // elements
  const double lse = local * static_cast<double>(p.heads_q);
  const double whole_rows = static_cast<double>(p.batch * p.seq * p.heads_q);
  const std::vector<int> world = rank_range(0, ranks);

  double fwd = 0, bwd = 0;  // the slowest rank: all query blocks against its own keys
  for (int r = 0; r < ranks; ++r) {
    double f = 0, b = 0;
    for (int i = 0; i < ranks; ++i) {
      const double work = tiled.work(p.mask, i, r);
      const int64_t sq = layout.local_seq(i), sk = layout.local_seq(r);
      f += compute.forward_seconds(work, p.heads_q, sq, sk);
      b += compute.backward_seconds(work, p.heads_q, sq, sk);
    }
    fwd = std::max(fwd, f);
    bwd = std::max(bwd, b);
  }
  const int rpn = plan_ranks_per_node(topo);
  TreeCost cost;
  add_step(cost.forward, 0, ring_all_gather_seconds(topo, world, q * e), false);
  add_step(cost.forward, fwd, 0, false);
  add_step(cost.forward, 0, combine_all_reduce_seconds(topo, ranks, rpn, whole_rows * 4), false);
  add_step(cost.forward, 0,
           combine_all_reduce_seconds(
               topo, ranks, rpn, (whole_rows * static_cast<double>(p.head_dim) + whole_rows) * 4),
           false);
  add_step(cost.backward, 0, ring_all_gather_seconds(topo, world, 2 * lse * 4 + 2 * q * e), false);
  add_step(cost.backward, bwd, 0, false);
  add_step(cost.backward, 0, ring_reduce_scatter_seconds(topo, world, q * 4), false);
  return cost;
}

StatusOr<DecodeCost> tree_decode_cost(const ModelInputs& inputs) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  const int64_t n = inputs.q_len;
  const int64_t local = (p.seq + ranks - 1) / ranks;  // the prompt's longest shard
  const ComputeModel compute{&inputs.rate, p.batch, p.head_dim};
  const double rows = static_cast<double>(p.batch * n * p.heads_q);
  const int rpn = plan_ranks_per_node(topo);
  DecodeCost cost;
  add_step(cost.step, compute.forward_seconds(static_cast<double>(n * local), p.heads_q, n, local),
           0, false);
  add_step(cost.step, 0, combine_all_reduce_seconds(topo, ranks, rpn, rows * 4), false);
  add_step(
      cost.step, 0,
      combine_all_reduce_seconds(topo, ranks, rpn, rows * static_cast<double>(p.head_dim + 1) * 4),
      false);
  DecodeProblem d{p.batch, p.heads_q, p.head_dim, n, 1.0f};
  cost.bytes_per_rank = tree_decode_comm(d, ranks, rpn).bytes_sent;
  return cost;
}

int64_t ring_decode_bytes(const AttentionProblem& p, int ranks, int64_t cache_tokens) {
  // Rank r forwards every shard but rank r + 1's; the most loaded forwards all but a shortest.
  const int64_t forwarded = cache_tokens - cache_tokens / ranks;
  return 2 * p.batch * forwarded * p.heads_kv * p.head_dim *
         static_cast<int64_t>(dtype_size(p.dtype));
}

StatusOr<DecodeCost> ring_decode_cost(const ModelInputs& inputs) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  const int64_t n = inputs.q_len;
  const int64_t local = (p.seq + ranks - 1) / ranks;  // the longest shard sets each step
  const ComputeModel compute{&inputs.rate, p.batch, p.head_dim};
  const double block = compute.forward_seconds(static_cast<double>(n * local), p.heads_q, n, local);
  const double kv = static_cast<double>(2 * p.batch * local * p.heads_kv * p.head_dim) *
                    static_cast<double>(dtype_size(p.dtype));
  double hop = 0;  // every rank sends the block it holds to the next rank
  for (int r = 0; r < ranks; ++r) {
    LinkLoad load;
    load.add(topo, r, (r + 1) % ranks, kv);
    hop = std::max(hop, load.seconds(topo));
  }
  DecodeCost cost;
  for (int step = 0; step < ranks; ++step)
    add_step(cost.step, block, step + 1 < ranks ? hop : 0, true);
  cost.bytes_per_rank = ring_decode_bytes(p, ranks, p.seq);
  return cost;
}

}  // namespace seqpar
