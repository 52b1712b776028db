// Cost of the ring engine's forward and backward step loops (see ring_cost.hpp).
#include "launch/ring_cost.hpp"

#include <algorithm>

#include "launch/link_cost.hpp"

namespace seqpar {

RingCost ring_engine_cost(const RingCostInput& in) {
  const Topology& topo = *in.topology;
  const Layout& layout = *in.layout;
  const int n = layout.ranks();
  const TiledLayout tiled = TiledLayout::of(layout, in.tiles, in.heads_q / in.heads_kv);
  // Per member, computed once (the loops below visit n^2 blocks): its global rank, and the bytes
  // of one of K or V of the block it owns.
  const std::vector<int>& member = in.members;
  std::vector<double> kv(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    kv[static_cast<size_t>(j)] =
        static_cast<double>(in.compute.batch * layout.local_seq(j) * in.heads_kv *
                            in.compute.head_dim * in.dtype_bytes);
  }
  auto wrap = [n](int position) { return position < 0 ? position + n : position; };

  RingCost cost;
  std::vector<double> fwd_bytes(static_cast<size_t>(n), 0), bwd_bytes(static_cast<size_t>(n), 0);
  for (int step = 0; step < n; ++step) {
    double fwd_compute = 0, bwd_compute = 0, fwd_comm = 0, bwd_comm = 0;
    for (int i = 0; i < n; ++i) {
      const size_t at = static_cast<size_t>(i);
      const int source = wrap(i - step);  // owner of the block held this step
      const double work = tiled.work(in.mask, i, source);
      const int64_t sq = tiled.length[at];
      const int64_t sk = tiled.length[static_cast<size_t>(source)];
      fwd_compute = std::max(fwd_compute, in.compute.forward_seconds(work, in.heads_q, sq, sk));
      bwd_compute = std::max(bwd_compute, in.compute.backward_seconds(work, in.heads_q, sq, sk));
      const double held = 2 * kv[static_cast<size_t>(source)];  // K and V of the held block
      LinkLoad shift;  // the K, V this member holds, to the next member
      if (step + 1 < n) {
        shift.add(topo, member[at], member[static_cast<size_t>(i + 1 == n ? 0 : i + 1)], held);
        fwd_bytes[at] += held;
        bwd_bytes[at] += held;
      }
      fwd_comm = std::max(fwd_comm, shift.seconds(topo));
      LinkLoad window = shift;  // plus the previous step's dK, dV share, to its owner
      if (step >= 2) {
        const int owner = wrap(i - step + 1);
        window.add(topo, member[at], member[static_cast<size_t>(owner)],
                   2 * kv[static_cast<size_t>(owner)]);
      }
      bwd_comm = std::max(bwd_comm, window.seconds(topo));
      if (step >= 1) bwd_bytes[at] += held;  // this step's share of the held block
    }
    add_step(cost.forward, fwd_compute, fwd_comm, true);
    add_step(cost.backward, bwd_compute, bwd_comm, true);
  }
  if (n > 1) {  // the last step's share, waited after the loop
    double last = 0;
    for (int i = 0; i < n; ++i) {
      const int owner = wrap(i - (n - 1));
      LinkLoad share;
      share.add(topo, member[static_cast<size_t>(i)], member[static_cast<size_t>(owner)],
                2 * kv[static_cast<size_t>(owner)]);
      last = std::max(last, share.seconds(topo));
    }
    add_step(cost.backward, 0, last, false);
  }
  for (size_t at = 0; at < static_cast<size_t>(n); ++at) {
    cost.forward_bytes_max = std::max(cost.forward_bytes_max, static_cast<int64_t>(fwd_bytes[at]));
    cost.backward_bytes_max =
        std::max(cost.backward_bytes_max, static_cast<int64_t>(bwd_bytes[at]));
  }
  return cost;
}

}  // namespace seqpar
