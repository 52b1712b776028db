#pragma once
// Scheme: what a Plan runs. Made once per plan with everything it needs preallocated; forward
// and backward then run many times without allocating. Each scheme is registered with a
// descriptor (runtime/scheme_registry.hpp) and lives in its own file under runtime/schemes/.
#include <memory>
#include <span>

#include "attention/block_params.hpp"
#include "attention/dispatch.hpp"
#include "comm/communicator.hpp"
#include "core/status.hpp"
#include "partition/layout.hpp"
#include "runtime/problem.hpp"
#include "runtime/scheme_kind.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

class Scheme {
 public:
  virtual ~Scheme() = default;
  virtual Status forward(const ForwardArgs& args) = 0;
  virtual Status backward(const BackwardArgs& args) = 0;
  virtual size_t workspace_bytes() const = 0;
  // Communicators the scheme split off the plan's and owns. Their traffic is the scheme's too but
  // is counted on them, not on the plan's communicator (Plan::comm_stats adds them up).
  virtual std::span<Communicator* const> subgroups() const { return {}; }
};

// The block kernels' progress hook for a scheme whose transfers are in flight on `comm` while
// it computes: the CPU kernels then call comm.progress() between tiles.
inline KernelProgressHook comm_progress_hook(Communicator& comm) {
  return {[](void* c) { static_cast<Communicator*>(c)->progress(); }, &comm};
}

// Everything a scheme is built from. The communicator is the caller's; it outlives the plan. A
// descriptor's schedule and workspace queries take a context without one (comm null).
struct SchemeContext {
  AttentionProblem problem;  // softmax_scale resolved (never 0)
  SchemeKind kind = SchemeKind::kZigzag;
  Layout layout;
  Communicator* comm = nullptr;
  Device device = Device::kHost;
  void* stream = nullptr;
  int ranks_per_node = 0;  // PlanConfig::ranks_per_node: consecutive ranks sharing a node (0: all)
  // PlanConfig::backward: false leaves out the buffers only backward uses (empty arena regions);
  // backward() is then never called (Plan::backward refuses it).
  bool backward = true;
};

// Element counts and bytes of one rank's (B, S_local, H, D) shards and (B, Hq, S_local) rows.
// Shards of contiguous layouts may differ by one token between ranks (partition/layout.hpp).
struct ShardSizes {
  size_t q_elems = 0;    // B * S_local * Hq * D
  size_t kv_elems = 0;   // B * S_local * Hkv * D
  size_t lse_elems = 0;  // B * Hq * S_local
  size_t q_bytes = 0;    // q_elems in the storage dtype: one of Q, O or dO
  size_t kv_bytes = 0;   // kv_elems in the storage dtype: one of K or V

  static ShardSizes of(const AttentionProblem& p, int64_t local_seq) {
    const auto local = static_cast<size_t>(local_seq);
    ShardSizes s;
    s.q_elems = static_cast<size_t>(p.batch * p.heads_q * p.head_dim) * local;
    s.kv_elems = static_cast<size_t>(p.batch * p.heads_kv * p.head_dim) * local;
    s.lse_elems = static_cast<size_t>(p.batch * p.heads_q) * local;
    s.q_bytes = s.q_elems * dtype_size(p.dtype);
    s.kv_bytes = s.kv_elems * dtype_size(p.dtype);
    return s;
  }
  // Rank `rank`'s shards.
  static ShardSizes of_rank(const SchemeContext& context, int rank) {
    return of(context.problem, context.layout.local_seq(rank));
  }
  // The largest shards of any rank: what a buffer holding any rank's shard needs.
  static ShardSizes largest(const SchemeContext& context) {
    return of(context.problem, context.layout.max_local_seq());
  }
};

// The block of rank q_rank's shard (queries) against rank kv_rank's shard (keys, values), all
// heads: q (B, S_local(q_rank), Hq, D), k/v (B, S_local(kv_rank), Hkv, D).
inline BlockShape shard_block_shape(const SchemeContext& context, int q_rank, int kv_rank) {
  const AttentionProblem& p = context.problem;
  return {p.batch,
          context.layout.local_seq(q_rank),
          context.layout.local_seq(kv_rank),
          p.heads_q,
          p.heads_kv,
          p.head_dim};
}

// The largest such block: what the kernels' scratch is sized for.
inline BlockShape largest_block_shape(const SchemeContext& context) {
  const AttentionProblem& p = context.problem;
  const int64_t local = context.layout.max_local_seq();
  return {p.batch, local, local, p.heads_q, p.heads_kv, p.head_dim};
}

// Where the scheme's kernels and elementwise work run: the plan's device and stream.
inline KernelTarget target_of(const SchemeContext& context) {
  return {context.device, context.stream};
}

// The block kernels' scratch for any shard against any shard (forward alone in a forward-only
// plan), carved from the plan's workspace.
inline size_t shard_kernel_scratch_bytes(const SchemeContext& context) {
  return block_kernel_scratch_bytes(largest_block_shape(context), target_of(context),
                                    context.backward);
}

// What every scheme's steps read, fixed when the plan is made: the context, this rank, where the
// work runs, this rank's shard sizes, and one workspace arena on the plan's device (carved by the
// scheme's prepare()).
class SchemeBase : public Scheme {
 public:
  size_t workspace_bytes() const override { return workspace_.bytes(); }

 protected:
  explicit SchemeBase(const SchemeContext& context)
      : ctx_(context),
        rank_(context.comm->rank()),
        target_(target_of(context)),
        shard_(ShardSizes::of_rank(context, rank_)) {}

  SchemeContext ctx_;
  int rank_;             // this rank of ctx_.comm
  KernelTarget target_;  // the plan's device and stream
  ShardSizes shard_;     // this rank's shards
  WorkspaceBuffer workspace_;
};

// BlockForwardParams or BlockBackwardParams with what every block-kernel call of a plan shares:
// the problem's dtype, mask and softmax scale, the kernels' scratch from the plan's workspace,
// and the progress hook (empty, or comm_progress_hook when transfers are in flight).
template <class Params>
Params plan_block_params(const AttentionProblem& p, float* scratch,
                         KernelProgressHook progress = {}) {
  Params params;
  params.dtype = p.dtype;
  params.mask = p.mask;
  params.softmax_scale = p.softmax_scale;
  params.scratch = scratch;
  params.progress = progress;
  return params;
}

// A descriptor's create(): a T made from the context, then its prepare() (split communicators,
// carve the workspace). T is a Scheme or a Decoder.
template <class T, class Base, class Context>
StatusOr<std::unique_ptr<Base>> make_prepared(const Context& context) {
  auto made = std::make_unique<T>(context);
  SEQPAR_RETURN_IF_ERROR(made->prepare());
  return std::unique_ptr<Base>(std::move(made));
}

}  // namespace seqpar
