// LightSeq's load-balanced DistAttn (Li et al. 2023) for the causal mask on the contiguous
// layout: the pairing of runtime/lightseq_pairing.hpp, P/2 + 1 steps of about (P + 1) / 2 block
// pairs per rank instead of ring's r + 1 on rank r.
//
// Forward, step t: a rank computes its pair while the next step's inputs (K/V from their owner,
// queries from a late rank to its helper) are already in flight. A helper's partial (O, LSE)
// goes back to the query owner in fp32 and is merged into the owner's running fp32 (O, LSE).
// Backward, same pairs: a query owner sends the dK/dV share of the block it computed to the
// block's owner; a helper (whose K/V are its own) keeps its dK/dV share and sends the dQ share to
// the query owner, having received Q, dO, the final LSE and delta. Shares travel in the storage
// dtype and are summed in fp32 by their owner; their transfer overlaps the next step's compute.
// K/V keep their Hkv heads on the wire (GQA/MQA are never replicated).
//
// Per rank and layer, with q, kv, lse the bytes of a shard's Q (storage), K or V (storage) and
// (B, Hq, S_local) fp32 rows, each of the rank whose block a transfer carries, per step t >= 1:
//   forward   inputs:  K, V to rank r + t (2 kv) and, when helped, Q to the helper (q);
//             results: a helper returns (O, LSE) of the helped rank's queries in fp32
//   backward  inputs:  K, V as above and, when helped, Q, dO, LSE, delta (2 q + 2 lse);
//             results: the dK, dV share to the kv owner (2 kv) or a helper's dQ share (q)
#include <algorithm>
#include <memory>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/lightseq_pairing.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// One arena, carved once. Buffers that hold another rank's block are sized for the largest
// shard; those a rank count never uses are empty, and so are those only backward uses in a
// forward-only plan (a helper then receives Q alone: no dO, LSE or delta).
struct LightSeqBuffers {
  char* kv_recv[2] = {nullptr, nullptr};  // (2, B, S_local, Hkv, D) storage: K then V, per slot
  char* q_recv[2] = {nullptr, nullptr};   // per slot, a helped rank's: Q, dO (B, S_local, Hq, D)
                                          // storage, then LSE, delta (B, Hq, S_local) fp32
  float* acc_q = nullptr;         // (B, S_local, Hq, D) fp32: running O (forward) or dQ (backward)
  float* delta = nullptr;         // (B, Hq, S_local) fp32: rowsum(dO * O)
  float* partial = nullptr;       // helper's result: (B, S_local, Hq, D) O then (B, Hq, S_local)
                                  // LSE fp32 (forward); (B, S_local, Hq, D) dQ share (backward)
  float* partial_recv = nullptr;  // a helper's (O, LSE) for our queries, as partial (forward)
  float* dkv_local = nullptr;     // (2, B, S_local, Hkv, D) fp32: a dK, dV share for another rank
  float* dkv_total = nullptr;     // (2, B, S_local, Hkv, D) fp32: our own block's dK, dV, summed
  void* share_send = nullptr;     // storage: a dK, dV share (2 * kv) or a dQ share (q) going out
  void* dkv_recv = nullptr;       // (2, B, S_local, Hkv, D) storage: a share of our dK, dV
  void* dq_recv = nullptr;        // (B, S_local, Hq, D) storage: a helper's share of our dQ
  float* kernel_scratch = nullptr;  // the block kernels' work area (block_kernel_scratch_bytes)

  void add_to(WorkspaceArena& arena, const SchemeContext& ctx, int rank) {
    const int ranks = ctx.layout.ranks();
    const bool moves_kv = ranks > 1;
    const bool has_helpers = ranks > 2;  // P <= 2 has no helper steps
    const bool bwd = ctx.backward;
    const ShardSizes own = ShardSizes::of_rank(ctx, rank);
    const ShardSizes any = ShardSizes::largest(ctx);  // buffers holding another rank's block
    const size_t lse_bytes = own.lse_elems * sizeof(float);
    const size_t any_lse_bytes = any.lse_elems * sizeof(float);
    for (char*& kv : kv_recv) arena.add(kv, moves_kv ? 2 * any.kv_bytes : 0);
    const size_t q_recv_bytes = bwd ? 2 * any.q_bytes + 2 * any_lse_bytes : any.q_bytes;
    for (char*& q : q_recv) arena.add(q, has_helpers ? q_recv_bytes : 0);
    arena.add(acc_q, own.q_elems * sizeof(float));
    arena.add(delta, bwd ? lse_bytes : 0);
    arena.add(partial, has_helpers ? any.q_elems * sizeof(float) + any_lse_bytes : 0);
    arena.add(partial_recv, has_helpers ? own.q_elems * sizeof(float) + lse_bytes : 0);
    arena.add(dkv_local, moves_kv && bwd ? 2 * any.kv_elems * sizeof(float) : 0);
    arena.add(dkv_total, bwd ? 2 * own.kv_elems * sizeof(float) : 0);
    arena.add(share_send,
              moves_kv && bwd ? std::max(2 * any.kv_bytes, has_helpers ? any.q_bytes : 0) : 0);
    arena.add(dkv_recv, moves_kv && bwd ? 2 * own.kv_bytes : 0);
    arena.add(dq_recv, has_helpers && bwd ? own.q_bytes : 0);
    arena.add(kernel_scratch, shard_kernel_scratch_bytes(ctx));
  }
};

class LightSeqScheme final : public SchemeBase {
 public:
  explicit LightSeqScheme(const SchemeContext& context)
      : SchemeBase(context), pairing_(lightseq_pairing(context.layout.ranks())) {}
  Status prepare() {
    WorkspaceArena arena;
    buf_.add_to(arena, ctx_, rank_);
    return arena.allocate(workspace_, ctx_.device);
  }

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;

 private:
  PositionMap positions_of(int rank) const {  // contiguous layout: one affine run
    return PositionMap::affine(ctx_.layout.global_position(rank, 0));
  }
  ShardSizes sizes_of(int rank) const { return ShardSizes::of_rank(ctx_, rank); }
  // Posts step `step`'s inputs into landing buffers `slot`: K/V to and from their pair's
  // computing rank, and the queries (with dO, LSE, delta when `backward`) to and from a helper.
  Status post_inputs(int step, int slot, const void* q, const void* k, const void* v,
                     const void* dout, const float* lse, bool backward, Request& request);

  LightSeqPairing pairing_;
  LightSeqBuffers buf_;
};

Status LightSeqScheme::post_inputs(int step, int slot, const void* q, const void* k, const void* v,
                                   const void* dout, const float* lse, bool backward,
                                   Request& request) {
  const LightSeqRankStep& s = pairing_.at(step, rank_);
  const size_t lse_bytes = shard_.lse_elems * sizeof(float);
  char* kv_landing = buf_.kv_recv[slot];
  char* q_landing = buf_.q_recv[slot];  // Q, dO, LSE, delta
  P2POp ops[12];
  size_t n = 0;
  if (s.kv_to >= 0) {
    ops[n++] = P2POp::send(s.kv_to, k, shard_.kv_bytes);
    ops[n++] = P2POp::send(s.kv_to, v, shard_.kv_bytes);
  }
  if (s.kv_from >= 0) {
    const size_t kv_bytes = sizes_of(s.kv_from).kv_bytes;
    ops[n++] = P2POp::recv(s.kv_from, kv_landing, kv_bytes);
    ops[n++] = P2POp::recv(s.kv_from, kv_landing + kv_bytes, kv_bytes);
  }
  if (s.q_to >= 0) {
    ops[n++] = P2POp::send(s.q_to, q, shard_.q_bytes);
    if (backward) {
      ops[n++] = P2POp::send(s.q_to, dout, shard_.q_bytes);
      ops[n++] = P2POp::send(s.q_to, lse, lse_bytes);
      ops[n++] = P2POp::send(s.q_to, buf_.delta, lse_bytes);
    }
  }
  if (s.q_from >= 0) {
    const ShardSizes from = sizes_of(s.q_from);
    const size_t from_lse_bytes = from.lse_elems * sizeof(float);
    ops[n++] = P2POp::recv(s.q_from, q_landing, from.q_bytes);
    if (backward) {
      ops[n++] = P2POp::recv(s.q_from, q_landing + from.q_bytes, from.q_bytes);
      ops[n++] = P2POp::recv(s.q_from, q_landing + 2 * from.q_bytes, from_lse_bytes);
      ops[n++] =
          P2POp::recv(s.q_from, q_landing + 2 * from.q_bytes + from_lse_bytes, from_lse_bytes);
    }
  }
  return n == 0 ? Status::ok() : ctx_.comm->start_exchange({ops, n}, request);
}

Status LightSeqScheme::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const BlockShape own = shard_block_shape(ctx_, rank_, rank_);
  const int steps = static_cast<int>(pairing_.steps.size());
  // A partial (O, LSE) in fp32 of `r`'s queries.
  auto partial_bytes = [&](int r) {
    const ShardSizes sizes = sizes_of(r);
    return sizes.q_elems * sizeof(float) + sizes.lse_elems * sizeof(float);
  };

  // Transfers in flight move while the kernel runs (the progress hook).
  auto block =
      plan_block_params<BlockForwardParams>(p, buf_.kernel_scratch, comm_progress_hook(*ctx_.comm));

  for (int step = 0; step < steps; ++step) {
    const LightSeqRankStep& s = pairing_.at(step, rank_);
    const int slot = step % 2;
    Request next;  // the next step's inputs, in flight while this step computes
    if (step + 1 < steps) {
      SEQPAR_RETURN_IF_ERROR(post_inputs(step + 1, (step + 1) % 2, args.q, args.k, args.v, nullptr,
                                         nullptr, false, next));
    }
    Request results;      // a helper's (O, LSE) going back to, or arriving at, the query owner
    if (s.q_from >= 0) {  // helping: rank q_from's queries against our own K/V
      block.shape = shard_block_shape(ctx_, s.q_from, rank_);
      block.q = buf_.q_recv[slot];
      block.k = args.k;
      block.v = args.v;
      block.out = buf_.partial;                               // (B, S_local(q_from), Hq, D) fp32
      block.lse = buf_.partial + sizes_of(s.q_from).q_elems;  // (B, Hq, S_local(q_from)) fp32
      block.q_pos = positions_of(s.q_from);
      block.k_pos = positions_of(rank_);
      block.accumulate = false;
      SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target_));
      const P2POp ops[] = {P2POp::send(s.q_from, buf_.partial, partial_bytes(s.q_from))};
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, results));
    } else if (s.computes()) {  // our queries against our own or arriving K/V
      if (s.q_to >= 0) {
        const P2POp ops[] = {P2POp::recv(s.q_to, buf_.partial_recv, partial_bytes(rank_))};
        SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, results));
      }
      block.shape = shard_block_shape(ctx_, rank_, s.kv_block);
      block.q = args.q;
      block.k = s.kv_from >= 0 ? buf_.kv_recv[slot] : args.k;
      block.v = s.kv_from >= 0 ? buf_.kv_recv[slot] + sizes_of(s.kv_from).kv_bytes : args.v;
      block.out = buf_.acc_q;  // (B, S_local, Hq, D) fp32 running output
      block.lse = args.lse;    // (B, Hq, S_local) running LSE, final after the last step
      block.q_pos = positions_of(rank_);
      block.k_pos = positions_of(s.kv_block);
      block.accumulate = step > 0;
      SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target_));
      if (s.q_to >= 0) {  // merge the helper's partial in fp32
        SEQPAR_RETURN_IF_ERROR(comm.wait(results));
        SEQPAR_RETURN_IF_ERROR(run_merge_partials(buf_.acc_q, args.lse, buf_.partial_recv,
                                                  buf_.partial_recv + shard_.q_elems, own.batch,
                                                  own.seq_q, own.heads_q, own.head_dim, target_));
      }
    }
    SEQPAR_RETURN_IF_ERROR(comm.wait(results));
    SEQPAR_RETURN_IF_ERROR(comm.wait(next));
  }
  return buffer_ops::convert_from_float(buf_.acc_q, args.out, p.dtype, shard_.q_elems, target_);
}

Status LightSeqScheme::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const BlockShape own = shard_block_shape(ctx_, rank_, rank_);
  const int steps = static_cast<int>(pairing_.steps.size());

  // delta (B, Hq, S_local) = rowsum(dO * O), from the final forward output.
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, p.dtype, own.batch, own.seq_q,
                                             own.heads_q, own.head_dim, buf_.delta, target_));
  // dQ (B, S_local, Hq, D) fp32
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.acc_q, shard_.q_elems * sizeof(float), target_));
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::zero(buf_.dkv_total, 2 * shard_.kv_elems * sizeof(float), target_));

  // Transfers in flight move while the kernel runs (the progress hook).
  auto block = plan_block_params<BlockBackwardParams>(p, buf_.kernel_scratch,
                                                      comm_progress_hook(*ctx_.comm));

  Request shares;  // the previous step's shares, in flight while this step computes
  const LightSeqRankStep* previous = nullptr;
  for (int step = 0; step < steps; ++step) {
    const LightSeqRankStep& s = pairing_.at(step, rank_);
    const int slot = step % 2;
    Request next;
    if (step + 1 < steps) {
      SEQPAR_RETURN_IF_ERROR(post_inputs(step + 1, (step + 1) % 2, args.q, args.k, args.v,
                                         args.dout, args.lse, true, next));
    }
    if (s.q_from >= 0) {  // helping: dQ share for rank q_from; dK, dV of our own block
      const ShardSizes from = sizes_of(s.q_from);
      const char* landing = buf_.q_recv[slot];  // Q, dO, then the final LSE and delta
      SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.partial, from.q_elems * sizeof(float), target_));
      block.shape = shard_block_shape(ctx_, s.q_from, rank_);
      block.q = landing;
      block.dout = landing + from.q_bytes;
      block.lse = reinterpret_cast<const float*>(landing + 2 * from.q_bytes);
      block.delta = block.lse + from.lse_elems;
      block.dq = buf_.partial;  // (B, S_local(q_from), Hq, D) fp32
      block.k = args.k;
      block.v = args.v;
      block.dk = buf_.dkv_total;
      block.dv = buf_.dkv_total + shard_.kv_elems;
      block.q_pos = positions_of(s.q_from);
      block.k_pos = positions_of(rank_);
      SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target_));
    } else if (s.computes()) {  // our queries: dQ stays; a dK, dV share for rank kv_from
      const bool own_kv = s.kv_from < 0;
      const ShardSizes held = sizes_of(s.kv_block);
      float* dkv =
          own_kv ? buf_.dkv_total : buf_.dkv_local;  // (2, B, S_local(kv_block), Hkv, D) fp32
      if (!own_kv) {
        SEQPAR_RETURN_IF_ERROR(
            buffer_ops::zero(buf_.dkv_local, 2 * held.kv_elems * sizeof(float), target_));
      }
      block.shape = shard_block_shape(ctx_, rank_, s.kv_block);
      block.q = args.q;
      block.dout = args.dout;
      block.lse = args.lse;
      block.delta = buf_.delta;
      block.dq = buf_.acc_q;
      block.k = own_kv ? args.k : buf_.kv_recv[slot];
      block.v = own_kv ? args.v : buf_.kv_recv[slot] + held.kv_bytes;
      block.dk = dkv;
      block.dv = dkv + held.kv_elems;
      block.q_pos = positions_of(rank_);
      block.k_pos = positions_of(s.kv_block);
      SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target_));
    }

    // The previous step's shares have had this step's compute to arrive: sum them in fp32.
    SEQPAR_RETURN_IF_ERROR(comm.wait(shares));
    if (previous != nullptr && previous->kv_to >= 0) {
      SEQPAR_RETURN_IF_ERROR(buffer_ops::add_to_float(buf_.dkv_total, buf_.dkv_recv, p.dtype,
                                                      2 * shard_.kv_elems, target_));
    }
    if (previous != nullptr && previous->q_to >= 0) {
      SEQPAR_RETURN_IF_ERROR(
          buffer_ops::add_to_float(buf_.acc_q, buf_.dq_recv, p.dtype, shard_.q_elems, target_));
    }
    // This step's shares: ours out (in the storage dtype), and shares of our blocks in.
    P2POp ops[3];
    size_t n = 0;
    if (s.q_from >= 0) {
      const ShardSizes from = sizes_of(s.q_from);
      SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(buf_.partial, buf_.share_send, p.dtype,
                                                            from.q_elems, target_));
      ops[n++] = P2POp::send(s.q_from, buf_.share_send, from.q_bytes);
    } else if (s.kv_from >= 0) {
      const ShardSizes held = sizes_of(s.kv_from);
      SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(buf_.dkv_local, buf_.share_send,
                                                            p.dtype, 2 * held.kv_elems, target_));
      ops[n++] = P2POp::send(s.kv_from, buf_.share_send, 2 * held.kv_bytes);
    }
    if (s.kv_to >= 0) ops[n++] = P2POp::recv(s.kv_to, buf_.dkv_recv, 2 * shard_.kv_bytes);
    if (s.q_to >= 0) ops[n++] = P2POp::recv(s.q_to, buf_.dq_recv, shard_.q_bytes);
    if (n > 0) SEQPAR_RETURN_IF_ERROR(comm.start_exchange({ops, n}, shares));
    previous = &s;
    SEQPAR_RETURN_IF_ERROR(comm.wait(next));
  }
  SEQPAR_RETURN_IF_ERROR(comm.wait(shares));  // the last step's shares
  if (previous->kv_to >= 0) {
    SEQPAR_RETURN_IF_ERROR(buffer_ops::add_to_float(buf_.dkv_total, buf_.dkv_recv, p.dtype,
                                                    2 * shard_.kv_elems, target_));
  }
  if (previous->q_to >= 0) {
    SEQPAR_RETURN_IF_ERROR(
        buffer_ops::add_to_float(buf_.acc_q, buf_.dq_recv, p.dtype, shard_.q_elems, target_));
  }
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(buf_.dkv_total, args.dk, p.dtype, shard_.kv_elems, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(buf_.dkv_total + shard_.kv_elems, args.dv,
                                                        p.dtype, shard_.kv_elems, target_));
  return buffer_ops::convert_from_float(buf_.acc_q, args.dq, p.dtype, shard_.q_elems, target_);
}

Status validate_lightseq(const PlanConfig& config, int /*ranks*/) {
  SEQPAR_REQUIRE(config.problem.mask == MaskKind::kCausal, StatusCode::kInvalidArgument,
                 "lightseq needs the causal mask: its balancing moves the causal work of late "
                 "ranks to idle early ranks, and a ",
                 mask_name(config.problem.mask),
                 " mask has no imbalance to fix (use ring, which does the same work with less "
                 "communication)");
  return Status::ok();
}

StatusOr<size_t> lightseq_workspace_bytes(const SchemeContext& context, int rank) {
  return arena_bytes<LightSeqBuffers>(context, rank);
}

// The step loops above as a schedule: step t computes its pairs while step t + 1's inputs move;
// a step with helpers is followed by the helpers' results going back (forward); a step's dK, dV
// and dQ shares are waited in the next step (backward), the last step's after the loop.
Status lightseq_schedule_of(const SchemeContext& context, Pass pass, ScheduleSink& out) {
  const AttentionProblem& p = context.problem;
  const Layout& layout = context.layout;
  const int ranks = layout.ranks();
  const LightSeqPairing pairing = lightseq_pairing(ranks);
  const int steps = static_cast<int>(pairing.steps.size());
  const bool backward = pass == Pass::kBackward;
  const int layout_id = out.add_layout(layout);
  auto sizes = [&](int r) { return ShardSizes::of(p, layout.local_seq(r)); };
  auto lse_bytes = [&](int r) { return static_cast<int64_t>(sizes(r).lse_elems * sizeof(float)); };
  auto q_bytes = [&](int r) { return static_cast<int64_t>(sizes(r).q_bytes); };
  auto kv_bytes = [&](int r) { return static_cast<int64_t>(sizes(r).kv_bytes); };
  // The exchange posting `step`'s inputs (none before step 0, or when the rank moves nothing).
  auto inputs = [&](int step, int r) {
    if (step >= steps) return;
    const LightSeqRankStep& s = pairing.at(step, r);
    if (s.kv_to < 0 && s.kv_from < 0 && s.q_to < 0 && s.q_from < 0) return;
    Send sends[2];
    size_t n = 0;
    if (s.kv_to >= 0) sends[n++] = {s.kv_to, 2 * kv_bytes(r)};
    if (s.q_to >= 0)
      sends[n++] = {s.q_to, backward ? 2 * q_bytes(r) + 2 * lse_bytes(r) : q_bytes(r)};
    out.exchange(r, {sends, n});
  };
  // The exchange of `step`'s backward shares: a helper's dQ share or a dK, dV share out, shares
  // of our blocks in.
  auto shares = [&](int step, int r) {
    if (step < 0 || step >= steps) return;
    const LightSeqRankStep& s = pairing.at(step, r);
    if (s.q_from < 0 && s.kv_from < 0 && s.kv_to < 0 && s.q_to < 0) return;
    if (s.q_from >= 0) {
      const Send dq{s.q_from, q_bytes(s.q_from)};
      out.exchange(r, {&dq, 1});
    } else if (s.kv_from >= 0) {
      const Send dkv{s.kv_from, 2 * kv_bytes(s.kv_from)};
      out.exchange(r, {&dkv, 1});
    } else {
      out.exchange(r, {});  // shares of our blocks arrive
    }
  };
  for (int step = 0; step < steps; ++step) {
    out.step(StepOverlap::kOverlapped);
    bool helpers = false;
    for (int r = 0; r < ranks; ++r) {
      const LightSeqRankStep& s = pairing.at(step, r);
      if (s.computes()) out.compute(r, {layout_id, s.q_block, s.kv_block, p.heads_q, p.heads_kv});
      inputs(step + 1, r);
      if (backward) shares(step - 1, r);
      helpers = helpers || s.q_from >= 0;
    }
    if (backward || !helpers) continue;
    out.step(StepOverlap::kSerial);  // a helper's partial (O, LSE) back to the query owner
    for (int r = 0; r < ranks; ++r) {
      const LightSeqRankStep& s = pairing.at(step, r);
      if (s.q_from >= 0) {
        const Send partial{s.q_from, static_cast<int64_t>(sizes(s.q_from).q_elems * sizeof(float)) +
                                         lse_bytes(s.q_from)};
        out.exchange(r, {&partial, 1});
      } else if (s.q_to >= 0 && s.computes()) {
        out.exchange(r, {});  // the owner's receive
      }
    }
  }
  if (!backward) return Status::ok();
  out.step(StepOverlap::kSerial);  // the last step's shares, waited after the loop
  for (int r = 0; r < ranks; ++r) shares(steps - 1, r);
  return Status::ok();
}

}  // namespace

extern constinit const SchemeDescriptor kLightSeqScheme{
    "lightseq",
    "contiguous runs (any S >= P), causal only; idle early ranks compute late ranks' "
    "pairs: P/2 + 1 balanced steps",
    &layout_of_kind<LayoutKind::kContiguous>,
    &validate_lightseq,
    &no_ulysses_degrees,
    false,
    &make_prepared<LightSeqScheme, Scheme, SchemeContext>,
    &lightseq_workspace_bytes,
    &lightseq_schedule_of};

}  // namespace seqpar
