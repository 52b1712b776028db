// The ring engine's step loops, workspace and schedule, and the ring, striped and zigzag
// schemes built on it (see ring_family.hpp).
#include "runtime/schemes/ring_family.hpp"

#include <new>
#include <vector>

#include "attention/dispatch.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// The engine's workspace: one arena on the plan's device. Buffers that hold another rank's block
// are sized for the largest one; those a multi-rank ring alone needs are empty at P = 1, and those
// only backward uses are empty in a forward-only plan.
struct RingBuffers {
  // (2, B, S_local, Hkv, D) storage: K then V, double buffered, sized for the largest block
  void* kv_recv[2] = {nullptr, nullptr};
  float* acc_q = nullptr;      // (B, S_local, Hq, D) fp32: running O (forward) or dQ (backward)
  float* delta = nullptr;      // (B, Hq, S_local) fp32: rowsum(dO * O)
  float* dkv_local = nullptr;  // (2, B, S_local, Hkv, D) fp32: this step's dK, dV share
  float* dkv_total = nullptr;  // (2, B, S_local, Hkv, D) fp32: our own block's dK, dV, summed
  void* dkv_send = nullptr;    // (2, B, S_local, Hkv, D) storage: a share going to its owner
  void* dkv_recv = nullptr;    // (2, B, S_local, Hkv, D) storage: a share of our block arriving
  float* kernel_scratch = nullptr;  // the block kernels' work area (block_kernel_scratch_bytes)
  // (S) every rank's token positions, rank by rank, for the kernels of a device plan (a host
  // plan's kernels read RingEngine::all_positions_ itself)
  int64_t* device_positions = nullptr;

  void add_to(WorkspaceArena& arena, const SchemeContext& ctx, int rank) {
    const bool ring = ctx.layout.ranks() > 1;
    const bool bwd = ctx.backward;
    const ShardSizes own = ShardSizes::of_rank(ctx, rank);
    const ShardSizes largest = ShardSizes::largest(ctx);
    arena.add(kv_recv[0], ring ? 2 * largest.kv_bytes : 0);
    arena.add(kv_recv[1], ring ? 2 * largest.kv_bytes : 0);
    arena.add(acc_q, own.q_elems * sizeof(float));
    arena.add(delta, bwd ? own.lse_elems * sizeof(float) : 0);
    arena.add(dkv_local, bwd ? 2 * largest.kv_elems * sizeof(float) : 0);
    arena.add(dkv_total, bwd ? 2 * own.kv_elems * sizeof(float) : 0);
    arena.add(dkv_send, ring && bwd ? 2 * largest.kv_bytes : 0);
    arena.add(dkv_recv, ring && bwd ? 2 * own.kv_bytes : 0);
    arena.add(kernel_scratch, shard_kernel_scratch_bytes(ctx));
    const bool device = ctx.device != Device::kHost;
    arena.add(device_positions,
              device ? static_cast<size_t>(ctx.layout.seq()) * sizeof(int64_t) : 0);
  }
};

class RingEngine final : public SchemeBase {
 public:
  explicit RingEngine(const SchemeContext& context) : SchemeBase(context) {}
  Status prepare();

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;

 private:
  // Posts the K, V held at `step` to the next rank and the next block's landing from the
  // previous one (blocks of contiguous layouts may differ by a token between ranks).
  Status post_kv_shift(int step, const void* k, const void* v, char* landing, Request& request);
  size_t kv_bytes_of(int rank) const { return ShardSizes::of_rank(ctx_, rank).kv_bytes; }

  std::vector<int64_t> all_positions_;     // (S): every rank's token positions, rank by rank
  std::vector<PositionMap> positions_of_;  // (P): rank r's positions, affine when one segment
  RingBuffers buf_;
};

Status RingEngine::prepare() {
  const Layout& layout = ctx_.layout;
  try {
    all_positions_.resize(static_cast<size_t>(layout.seq()));
    positions_of_.reserve(static_cast<size_t>(layout.ranks()));
  } catch (const std::bad_alloc&) {
    return SEQPAR_FAIL(StatusCode::kOutOfMemory, "no memory for the positions of ", layout.seq(),
                       " tokens");
  }
  WorkspaceArena arena;
  buf_.add_to(arena, ctx_, rank_);
  SEQPAR_RETURN_IF_ERROR(arena.allocate(workspace_, ctx_.device));
  // The kernels read index maps where they run: a device plan's from its workspace (uploaded
  // once, on the plan's stream; all_positions_ lives as long as the plan).
  const bool on_device = ctx_.device != Device::kHost;
  int64_t* positions = all_positions_.data();
  int64_t* kernel_positions = on_device ? buf_.device_positions : positions;
  for (int r = 0; r < layout.ranks(); ++r) {
    layout.positions(r, positions);
    const std::vector<Segment> segments = layout.segments(r);
    positions_of_.push_back(segments.size() == 1 ? PositionMap::affine(segments[0].global_offset,
                                                                       segments[0].global_stride)
                                                 : PositionMap::indexed(kernel_positions));
    positions += layout.local_seq(r);
    kernel_positions += layout.local_seq(r);
  }
  if (!on_device) return Status::ok();
  return buffer_ops::copy(buf_.device_positions, all_positions_.data(),
                          all_positions_.size() * sizeof(int64_t), target_);
}

Status RingEngine::post_kv_shift(int step, const void* k, const void* v, char* landing,
                                 Request& request) {
  Communicator& comm = *ctx_.comm;
  const int ranks = comm.size();
  const int next = (rank_ + 1) % ranks;
  const int prev = (rank_ + ranks - 1) % ranks;
  // We hold the block of rank r - step and pass it on; the block of rank r - step - 1 arrives.
  const size_t held = kv_bytes_of((rank_ - step + ranks) % ranks);
  const size_t arriving = kv_bytes_of((rank_ - step - 1 + 2 * ranks) % ranks);
  const P2POp ops[] = {P2POp::send(next, k, held), P2POp::send(next, v, held),
                       P2POp::recv(prev, landing, arriving),
                       P2POp::recv(prev, landing + arriving, arriving)};
  return comm.start_exchange(ops, request);
}

Status RingEngine::forward(const ForwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int ranks = comm.size();

  // The progress hook: the next block's transfer moves while the kernel runs.
  auto block =
      plan_block_params<BlockForwardParams>(p, buf_.kernel_scratch, comm_progress_hook(comm));
  block.q = args.q;
  block.out = buf_.acc_q;  // (B, S_local, Hq, D) fp32 running output
  block.lse = args.lse;    // (B, Hq, S_local) running LSE, final after the last step
  block.q_pos = positions_of_[static_cast<size_t>(rank_)];

  const void* k = args.k;  // K, V of the block held this step: (B, S_local, Hkv, D)
  const void* v = args.v;
  for (int step = 0; step < ranks; ++step) {
    const int source = (rank_ - step + ranks) % ranks;  // owner of the block held this step
    Request incoming;
    char* landing = static_cast<char*>(buf_.kv_recv[step % 2]);
    if (step + 1 < ranks) {  // post the next block's transfer before computing on this one
      SEQPAR_RETURN_IF_ERROR(post_kv_shift(step, k, v, landing, incoming));
    }
    block.shape = shard_block_shape(ctx_, rank_, source);
    block.k = k;
    block.v = v;
    block.k_pos = positions_of_[static_cast<size_t>(source)];
    block.accumulate = step > 0;
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, target_));
    SEQPAR_RETURN_IF_ERROR(comm.wait(incoming));
    k = landing;  // K then V of the next block: (B, S_local(source - 1), Hkv, D) each
    v = landing + kv_bytes_of((source - 1 + ranks) % ranks);
  }
  return buffer_ops::convert_from_float(buf_.acc_q, args.out, p.dtype, shard_.q_elems, target_);
}

Status RingEngine::backward(const BackwardArgs& args) {
  Communicator& comm = *ctx_.comm;
  const AttentionProblem& p = ctx_.problem;
  const int ranks = comm.size();
  const BlockShape own = shard_block_shape(ctx_, rank_, rank_);
  const size_t kv_elems = shard_.kv_elems;

  // delta (B, Hq, S_local) = rowsum(dO * O), from the final forward output.
  SEQPAR_RETURN_IF_ERROR(run_attention_delta(args.out, args.dout, p.dtype, own.batch, own.seq_q,
                                             own.heads_q, own.head_dim, buf_.delta, target_));
  // dQ (B, S_local, Hq, D) fp32
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(buf_.acc_q, shard_.q_elems * sizeof(float), target_));

  // The progress hook: the next block's transfer moves while the kernel runs.
  auto block =
      plan_block_params<BlockBackwardParams>(p, buf_.kernel_scratch, comm_progress_hook(comm));
  block.q = args.q;
  block.dout = args.dout;
  block.lse = args.lse;
  block.delta = buf_.delta;
  block.dq = buf_.acc_q;
  block.q_pos = positions_of_[static_cast<size_t>(rank_)];

  const void* k = args.k;
  const void* v = args.v;
  // Our share of the previous block going to its owner, and a share of ours arriving.
  Request shares;
  for (int step = 0; step < ranks; ++step) {
    const int source = (rank_ - step + ranks) % ranks;  // owner of the block held this step
    Request incoming;
    char* landing = static_cast<char*>(buf_.kv_recv[step % 2]);
    if (step + 1 < ranks) SEQPAR_RETURN_IF_ERROR(post_kv_shift(step, k, v, landing, incoming));
    // Step 0's block is our own: its share goes straight into the total; later shares go out.
    const size_t held_elems = ShardSizes::of_rank(ctx_, source).kv_elems;
    float* share = step == 0 ? buf_.dkv_total : buf_.dkv_local;  // (2, B, S_local, Hkv, D)
    SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(share, 2 * held_elems * sizeof(float), target_));
    block.shape = shard_block_shape(ctx_, rank_, source);
    block.dk = share;
    block.dv = share + held_elems;
    block.k = k;
    block.v = v;
    block.k_pos = positions_of_[static_cast<size_t>(source)];
    SEQPAR_RETURN_IF_ERROR(run_block_backward(block, target_));

    if (step > 0) {
      SEQPAR_RETURN_IF_ERROR(comm.wait(shares));  // last step's transfers are done
      if (step > 1) {
        SEQPAR_RETURN_IF_ERROR(buffer_ops::add_to_float(buf_.dkv_total, buf_.dkv_recv, p.dtype,
                                                        2 * kv_elems, target_));
      }
      SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(buf_.dkv_local, buf_.dkv_send, p.dtype,
                                                            2 * held_elems, target_));
      const int holder = (rank_ + step) % ranks;  // holds our block this step
      const P2POp ops[] = {P2POp::send(source, buf_.dkv_send, 2 * kv_bytes_of(source)),
                           P2POp::recv(holder, buf_.dkv_recv, 2 * shard_.kv_bytes)};
      SEQPAR_RETURN_IF_ERROR(comm.start_exchange(ops, shares));
    }
    SEQPAR_RETURN_IF_ERROR(comm.wait(incoming));
    k = landing;
    v = landing + kv_bytes_of((source - 1 + ranks) % ranks);
  }
  if (ranks > 1) {  // the last share of our block
    SEQPAR_RETURN_IF_ERROR(comm.wait(shares));
    SEQPAR_RETURN_IF_ERROR(
        buffer_ops::add_to_float(buf_.dkv_total, buf_.dkv_recv, p.dtype, 2 * kv_elems, target_));
  }
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::convert_from_float(buf_.dkv_total, args.dk, p.dtype, kv_elems, target_));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::convert_from_float(buf_.dkv_total + kv_elems, args.dv, p.dtype,
                                                        kv_elems, target_));
  return buffer_ops::convert_from_float(buf_.acc_q, args.dq, p.dtype, shard_.q_elems, target_);
}

// ---- the ring, striped and zigzag schemes: the engine over their layouts ----

Status ring_family_schedule(const SchemeContext& context, Pass pass, ScheduleSink& out) {
  const AttentionProblem& p = context.problem;
  const RingLane lane{RankGroup::all(context.layout.ranks()), p.heads_q, p.heads_kv};
  const int layout_id = out.add_layout(context.layout);
  ring_engine_schedule(p, context.layout, layout_id, {&lane, 1}, pass, out);
  return Status::ok();
}

// The ring, striped and zigzag schemes differ only in their layout.
template <LayoutKind kind>
constexpr SchemeDescriptor ring_family_descriptor(const char* name, const char* summary) {
  return {name,
          summary,
          &layout_of_kind<kind>,
          nullptr,
          &no_ulysses_degrees,
          false,
          &create_ring_engine,
          &ring_engine_workspace_bytes,
          &ring_family_schedule};
}

}  // namespace

StatusOr<std::unique_ptr<Scheme>> create_ring_engine(const SchemeContext& context) {
  return make_prepared<RingEngine, Scheme>(context);
}

StatusOr<size_t> ring_engine_workspace_bytes(const SchemeContext& context, int rank) {
  return arena_bytes<RingBuffers>(context, rank);
}

void ring_engine_schedule(const AttentionProblem& p, const Layout& layout, int layout_id,
                          std::span<const RingLane> lanes, Pass pass, ScheduleSink& out) {
  const int n = layout.ranks();
  const int64_t e = static_cast<int64_t>(dtype_size(p.dtype));
  auto wrap = [n](int position) { return (position % n + n) % n; };
  // K and V of the block of ring position j, on a lane's heads.
  auto kv_pair = [&](const RingLane& lane, int j) {
    return 2 * p.batch * layout.local_seq(j) * lane.heads_kv * p.head_dim * e;
  };
  const bool backward = pass == Pass::kBackward;
  for (int step = 0; step < n; ++step) {
    out.step(StepOverlap::kOverlapped);
    for (const RingLane& lane : lanes) {
      for (int i = 0; i < n; ++i) {
        const int rank = lane.members.at(i);
        const int source = wrap(i - step);  // the block held this step
        out.compute(rank, {layout_id, i, source, lane.heads_q, lane.heads_kv});
        if (step + 1 < n) {  // the held K, V to the next member, posted before the compute
          const Send shift{lane.members.at(wrap(i + 1)), kv_pair(lane, source)};
          out.exchange(rank, {&shift, 1});
        }
        if (backward && step >= 2) {  // the previous step's dK, dV share, waited in this one
          const int owner = wrap(i - step + 1);
          const Send share{lane.members.at(owner), kv_pair(lane, owner)};
          out.exchange(rank, {&share, 1});
        }
      }
    }
  }
  if (!backward || n == 1) return;
  out.step(StepOverlap::kSerial);  // the last step's share, waited after the loop
  for (const RingLane& lane : lanes) {
    for (int i = 0; i < n; ++i) {
      const int owner = wrap(i - (n - 1));
      const Send share{lane.members.at(owner), kv_pair(lane, owner)};
      out.exchange(lane.members.at(i), {&share, 1});
    }
  }
}

extern constinit const SchemeDescriptor kRingScheme =
    ring_family_descriptor<LayoutKind::kContiguous>(
        "ring", "contiguous runs of S/P tokens (any S >= P); causal work unbalanced: the baseline");
extern constinit const SchemeDescriptor kStripedScheme =
    ring_family_descriptor<LayoutKind::kStriped>(
        "striped", "token t on rank t mod P (S % P == 0); causal work balanced");
extern constinit const SchemeDescriptor kZigzagScheme = ring_family_descriptor<LayoutKind::kZigzag>(
    "zigzag", "chunks r and 2P-1-r of 2P (S % 2P == 0); causal work balanced in half blocks");

}  // namespace seqpar
