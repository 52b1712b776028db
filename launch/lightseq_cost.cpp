// Cost of LightSeq's balanced schedule (see lightseq_cost.hpp).
#include "launch/lightseq_cost.hpp"

#include <algorithm>

#include "launch/link_cost.hpp"
#include "runtime/lightseq_schedule.hpp"

namespace seqpar {

StatusOr<LightSeqCost> lightseq_cost(const ModelInputs& inputs, const KernelTiles& tiles) {
  const Topology& topo = inputs.topology;
  const AttentionProblem& p = inputs.problem;
  const int ranks = topo.ranks();
  SEQPAR_ASSIGN_OR_RETURN(const Layout layout, Layout::make(LayoutKind::kContiguous, p.seq, ranks));
  const TiledLayout tiled = TiledLayout::of(layout, tiles, p.heads_q / p.heads_kv);
  const LightSeqSchedule schedule = lightseq_schedule(ranks);
  const ComputeModel compute{&inputs.rate, p.batch, p.head_dim};
  const double e = static_cast<double>(dtype_size(p.dtype));
  auto tokens = [&](int r) { return static_cast<double>(p.batch * layout.local_seq(r)); };
  auto q_bytes = [&](int r) { return tokens(r) * static_cast<double>(p.heads_q * p.head_dim) * e; };
  auto kv_bytes = [&](int r) {
    return tokens(r) * static_cast<double>(p.heads_kv * p.head_dim) * e;
  };
  auto lse_bytes = [&](int r) { return tokens(r) * static_cast<double>(p.heads_q) * 4.0; };
  auto q_f32_bytes = [&](int r) {
    return tokens(r) * static_cast<double>(p.heads_q * p.head_dim) * 4.0;
  };

  LightSeqCost cost;
  cost.forward_bytes.assign(static_cast<size_t>(ranks), 0);
  cost.backward_bytes.assign(static_cast<size_t>(ranks), 0);
  const int steps = static_cast<int>(schedule.steps.size());
  // Inputs of `step` a rank posts (during the previous step), added to `load` and `bytes`.
  auto inputs_of = [&](int step, int r, bool backward, LinkLoad& load, int64_t& bytes) {
    if (step >= steps) return;
    const LightSeqRankStep& s = schedule.at(step, r);
    double sent = 0;
    if (s.kv_to >= 0) {
      load.add(topo, r, s.kv_to, 2 * kv_bytes(r));
      sent += 2 * kv_bytes(r);
    }
    if (s.q_to >= 0) {
      const double q = backward ? 2 * q_bytes(r) + 2 * lse_bytes(r) : q_bytes(r);
      load.add(topo, r, s.q_to, q);
      sent += q;
    }
    bytes += static_cast<int64_t>(sent);
  };
  // Shares of `step` a rank sends after its compute (backward).
  auto shares_of = [&](int step, int r, LinkLoad& load, int64_t& bytes) {
    if (step < 0 || step >= steps) return;
    const LightSeqRankStep& s = schedule.at(step, r);
    if (s.q_from >= 0) {
      load.add(topo, r, s.q_from, q_bytes(s.q_from));
      bytes += static_cast<int64_t>(q_bytes(s.q_from));
    } else if (s.kv_from >= 0) {
      load.add(topo, r, s.kv_from, 2 * kv_bytes(s.kv_from));
      bytes += static_cast<int64_t>(2 * kv_bytes(s.kv_from));
    }
  };

  for (int step = 0; step < steps; ++step) {
    double fwd_compute = 0, bwd_compute = 0, fwd_inputs = 0, bwd_window = 0, results = 0;
    for (int r = 0; r < ranks; ++r) {
      const LightSeqRankStep& s = schedule.at(step, r);
      if (s.computes()) {
        const double work = tiled.work(p.mask, s.q_block, s.kv_block);
        const int64_t sq = layout.local_seq(s.q_block), sk = layout.local_seq(s.kv_block);
        fwd_compute = std::max(fwd_compute, compute.forward_seconds(work, p.heads_q, sq, sk));
        bwd_compute = std::max(bwd_compute, compute.backward_seconds(work, p.heads_q, sq, sk));
      }
      LinkLoad fwd_load, bwd_load;
      inputs_of(step + 1, r, false, fwd_load, cost.forward_bytes[static_cast<size_t>(r)]);
      inputs_of(step + 1, r, true, bwd_load, cost.backward_bytes[static_cast<size_t>(r)]);
      shares_of(step - 1, r, bwd_load, cost.backward_bytes[static_cast<size_t>(r)]);
      fwd_inputs = std::max(fwd_inputs, fwd_load.seconds(topo));
      bwd_window = std::max(bwd_window, bwd_load.seconds(topo));
      if (s.q_from >= 0) {  // a helper's partial (O, LSE) in fp32, back to the query owner
        LinkLoad back;
        const double partial = q_f32_bytes(s.q_from) + lse_bytes(s.q_from);
        back.add(topo, r, s.q_from, partial);
        results = std::max(results, back.seconds(topo));
        cost.forward_bytes[static_cast<size_t>(r)] += static_cast<int64_t>(partial);
      }
    }
    add_step(cost.forward, fwd_compute, fwd_inputs, true);
    if (results > 0) add_step(cost.forward, 0, results, false);
    add_step(cost.backward, bwd_compute, bwd_window, true);
  }
  double last = 0;  // the last step's shares, waited after the loop
  for (int r = 0; r < ranks; ++r) {
    LinkLoad load;
    shares_of(steps - 1, r, load, cost.backward_bytes[static_cast<size_t>(r)]);
    last = std::max(last, load.seconds(topo));
  }
  if (last > 0) add_step(cost.backward, 0, last, false);
  return cost;
}

}  // namespace seqpar
