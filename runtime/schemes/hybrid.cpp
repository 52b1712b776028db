// Hybrid attention (USP / LoongTrain / TransformerEngine a2a+p2p): Ulysses inside groups of U
// consecutive ranks, a zigzag ring across the R groups (runtime/hybrid_grid.hpp places them).
// Shards are in the hybrid_zigzag layout (partition/layout.hpp): group g holds zigzag chunks g
// and 2R-1-g of the R groups, and rank u of the group holds the u-th 1/U of them.
//
// Forward: an all-to-all inside the group turns each rank's (S/P tokens, all heads) into (the
// group's S/R tokens, rank u's head slice of split_heads(Hq, Hkv, U)); the ring engine
// (runtime/schemes/ring_family.hpp) then runs the zigzag ring over the R groups on the
// head-sliced problem (every rank of one ring has the same u, so the same heads); a second
// all-to-all returns O and LSE to the tokens' owners. Backward: Q, dO, O, K, V and LSE go out in
// one all-to-all (the ring computes delta = rowsum(dO * O) itself), the ring runs its backward,
// and dQ, dK, dV come back in another; a kv head shared by several ranks of the group (Hkv < U)
// gets its dK, dV shares summed in fp32.
//
// The group and ring communicators are split off the plan's at creation and owned here; their
// traffic is reported through subgroups(). The group all-to-alls are runtime/head_exchange.hpp's
// (sending O, not delta, in backward), with counts fixed at creation, so a step allocates nothing.
#include <memory>
#include <span>
#include <vector>

#include "core/dtype.hpp"
#include "runtime/head_exchange.hpp"
#include "runtime/hybrid_grid.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/schemes/ring_family.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// Run u of the group's S/R tokens, for every place u of rank `rank`'s group.
std::vector<int64_t> group_tokens(const Layout& layout, const HybridGrid& grid, int rank) {
  std::vector<int64_t> tokens;
  const int first = grid.rank_at(grid.group_of(rank), 0);
  for (int u = 0; u < grid.ulysses; ++u) tokens.push_back(layout.local_seq(first + u));
  return tokens;
}

HybridGrid grid_of(const Layout& layout) {
  return {layout.ulysses_degree(), layout.ranks() / layout.ulysses_degree()};
}

// The ring's context: rank u's head slice over the whole sequence, zigzag over the R groups.
StatusOr<SchemeContext> ring_context(const SchemeContext& context, const HeadSlice& slice,
                                     Communicator* ring) {
  AttentionProblem sliced = context.problem;
  sliced.heads_q = slice.q_count;
  sliced.heads_kv = slice.kv_count;
  SEQPAR_ASSIGN_OR_RETURN(Layout layout, Layout::make(LayoutKind::kZigzag, context.problem.seq,
                                                      grid_of(context.layout).rings));
  return SchemeContext{sliced, SchemeKind::kZigzag, std::move(layout),
                       ring,   context.device,      context.stream,
                       0,      context.backward};
}

// The ring's gradients on this rank's heads (backward only), beside the exchange's and the
// ring's own arenas.
struct HybridBuffers {
  void* dq_heads = nullptr;  // (B, S/R, q_u, D) storage: dQ from the ring
  void* dk_heads = nullptr;  // (B, S/R, kv_u, D) storage
  void* dv_heads = nullptr;  // (B, S/R, kv_u, D) storage

  void add_to(WorkspaceArena& arena, const SchemeContext& ctx, const HeadSlice& mine) {
    const AttentionProblem& p = ctx.problem;
    const size_t storage = dtype_size(p.dtype);
    const size_t rows = static_cast<size_t>(p.batch * (p.seq / grid_of(ctx.layout).rings));
    const size_t bwd = ctx.backward ? 1 : 0;
    arena.add(dq_heads, bwd * rows * static_cast<size_t>(mine.q_count * p.head_dim) * storage);
    for (void** kv_like : {&dk_heads, &dv_heads})
      arena.add(*kv_like, bwd * rows * static_cast<size_t>(mine.kv_count * p.head_dim) * storage);
  }
};

class HybridScheme final : public Scheme {
 public:
  explicit HybridScheme(const SchemeContext& context)
      : ctx_(context), grid_(grid_of(context.layout)) {}
  Status prepare();

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override {
    return workspace_.bytes() + exchange_->workspace_bytes() + ring_->workspace_bytes();
  }
  // {this rank's Ulysses group (rank u of U), its ring across the groups (rank g of R)}.
  std::span<Communicator* const> subgroups() const override { return subgroups_; }

 private:
  Status split_communicators();

  SchemeContext ctx_;
  HybridGrid grid_;
  std::unique_ptr<Communicator> group_comm_;  // the U ranks of this group, rank u
  std::unique_ptr<Communicator> ring_comm_;   // the R ranks with this u, rank g
  Communicator* subgroups_[2] = {nullptr, nullptr};
  // The all-to-alls inside the group and this rank's head tensors, holding the group's S/R tokens
  // (the ring's zigzag shard of group g) for this rank's q_u query and kv_u kv heads.
  std::unique_ptr<HeadExchange> exchange_;
  std::unique_ptr<Scheme> ring_;  // the zigzag ring engine over ring_comm_, on this rank's heads
  WorkspaceBuffer workspace_;
  HybridBuffers buf_;
};

Status HybridScheme::prepare() {
  SEQPAR_REQUIRE(ctx_.layout.kind() == LayoutKind::kHybridZigzag, StatusCode::kInternal,
                 "hybrid needs the hybrid_zigzag layout, got ", layout_name(ctx_.layout.kind()));
  const AttentionProblem& p = ctx_.problem;
  SEQPAR_ASSIGN_OR_RETURN(std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, grid_.ulysses));
  SEQPAR_RETURN_IF_ERROR(split_communicators());
  // Place u of the group is rank u of group_comm_ (checked by split_communicators); it holds
  // run u of the group's S/R tokens.
  SEQPAR_ASSIGN_OR_RETURN(
      exchange_,
      HeadExchange::create(p, *group_comm_, std::move(slices),
                           group_tokens(ctx_.layout, grid_, ctx_.comm->rank()), BackwardCarry::kOut,
                           {ctx_.device, ctx_.stream}, ctx_.backward));
  SEQPAR_ASSIGN_OR_RETURN(const SchemeContext ring,
                          ring_context(ctx_, exchange_->mine(), ring_comm_.get()));
  SEQPAR_ASSIGN_OR_RETURN(ring_, create_ring_engine(ring));
  WorkspaceArena arena;
  buf_.add_to(arena, ctx_, exchange_->mine());
  return arena.allocate(workspace_, ctx_.device);
}

Status HybridScheme::split_communicators() {
  Communicator& comm = *ctx_.comm;
  const int group = grid_.group_of(comm.rank());
  const int place = grid_.place_of(comm.rank());
  SEQPAR_ASSIGN_OR_RETURN(group_comm_, comm.split(group, place));  // ranks [g*U, (g+1)*U)
  SEQPAR_ASSIGN_OR_RETURN(ring_comm_, comm.split(place, group));   // ranks u, U + u, 2U + u, ...
  SEQPAR_REQUIRE(group_comm_->rank() == place && ring_comm_->rank() == group, StatusCode::kInternal,
                 "split placed rank ", comm.rank(), " at ", group_comm_->rank(),
                 " of its group and ", ring_comm_->rank(), " of its ring, not ", place, " and ",
                 group);
  subgroups_[0] = group_comm_.get();
  subgroups_[1] = ring_comm_.get();
  return Status::ok();
}

Status HybridScheme::forward(const ForwardArgs& args) {
  HeadExchange& x = *exchange_;
  SEQPAR_RETURN_IF_ERROR(x.forward_in(args));
  SEQPAR_RETURN_IF_ERROR(
      ring_->forward({x.q_heads(), x.k_heads(), x.v_heads(), x.out_heads(), x.lse_heads()}));
  return x.forward_out(x.out_heads(), ctx_.problem.dtype, args);
}

Status HybridScheme::backward(const BackwardArgs& args) {
  HeadExchange& x = *exchange_;
  // O goes out instead of delta: the ring computes delta = rowsum(dO * O) itself.
  SEQPAR_RETURN_IF_ERROR(x.backward_in(args, nullptr));
  SEQPAR_RETURN_IF_ERROR(
      ring_->backward({x.q_heads(), x.k_heads(), x.v_heads(), x.out_heads(), x.lse_heads(),
                       x.dout_heads(), buf_.dq_heads, buf_.dk_heads, buf_.dv_heads}));
  return x.backward_out(buf_.dq_heads, buf_.dk_heads, buf_.dv_heads, ctx_.problem.dtype, args);
}

StatusOr<Layout> hybrid_layout(const PlanConfig& config, int ranks) {
  SEQPAR_ASSIGN_OR_RETURN(const HybridGrid grid, hybrid_grid(config, ranks));
  return Layout::make(LayoutKind::kHybridZigzag, config.problem.seq, ranks, grid.ulysses);
}

std::vector<int> every_divisor(int ranks) {
  std::vector<int> degrees;
  for (int u = 1; u <= ranks; ++u) {
    if (ranks % u == 0) degrees.push_back(u);
  }
  return degrees;
}

StatusOr<size_t> hybrid_workspace_bytes(const SchemeContext& context, int rank) {
  const AttentionProblem& p = context.problem;
  const HybridGrid grid = grid_of(context.layout);
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, grid.ulysses));
  const HeadSlice& mine = slices[static_cast<size_t>(grid.place_of(rank))];
  SEQPAR_ASSIGN_OR_RETURN(const size_t exchange,
                          HeadExchange::workspace_bytes_for(
                              p, slices, group_tokens(context.layout, grid, rank),
                              grid.place_of(rank), BackwardCarry::kOut, context.backward));
  SEQPAR_ASSIGN_OR_RETURN(const SchemeContext ring_of_mine, ring_context(context, mine, nullptr));
  SEQPAR_ASSIGN_OR_RETURN(const size_t ring,
                          ring_engine_workspace_bytes(ring_of_mine, grid.group_of(rank)));
  return arena_bytes<HybridBuffers>(context, mine) + exchange + ring;
}

// A group all-to-all, the U rings side by side (one per place u, across the groups, on u's
// heads), and a group all-to-all back.
Status hybrid_schedule(const SchemeContext& context, Pass pass, ScheduleSink& out) {
  const AttentionProblem& p = context.problem;
  const HybridGrid grid = grid_of(context.layout);
  const int ranks = context.layout.ranks();
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<HeadSlice> slices,
                          split_heads(p.heads_q, p.heads_kv, grid.ulysses));
  SEQPAR_ASSIGN_OR_RETURN(const Layout ring_layout,
                          Layout::make(LayoutKind::kZigzag, p.seq, grid.rings));
  std::vector<HeadExchangeSplits> splits;  // (P): each rank's, in its group
  std::vector<RankGroup> groups;           // (P): each rank's group of U consecutive ranks
  for (int r = 0; r < ranks; ++r) {
    SEQPAR_ASSIGN_OR_RETURN(HeadExchangeSplits split,
                            HeadExchangeSplits::of(p, group_tokens(context.layout, grid, r), slices,
                                                   grid.place_of(r), BackwardCarry::kOut));
    splits.push_back(std::move(split));
    groups.push_back({grid.rank_at(grid.group_of(r), 0), grid.ulysses, 1});
  }
  const bool backward = pass == Pass::kBackward;
  auto all_to_all = [&](AllToAllSplit HeadExchangeSplits::*stage) {
    HeadExchangeSplits::schedule_step(splits, groups, stage, out);
  };
  all_to_all(backward ? &HeadExchangeSplits::backward_in : &HeadExchangeSplits::forward_in);
  std::vector<RingLane> lanes;
  for (int u = 0; u < grid.ulysses; ++u) {
    const HeadSlice& s = slices[static_cast<size_t>(u)];
    lanes.push_back({{u, grid.rings, grid.ulysses}, s.q_count, s.kv_count});
  }
  ring_engine_schedule(p, ring_layout, out.add_layout(ring_layout), lanes, pass, out);
  all_to_all(backward ? &HeadExchangeSplits::backward_out : &HeadExchangeSplits::forward_out);
  return Status::ok();
}

}  // namespace

extern constinit const SchemeDescriptor kHybridScheme{
    "hybrid",
    "U x R grid: Ulysses in groups of U consecutive ranks (Hq >= U), a zigzag ring across "
    "the R groups (S % 2R == 0); all-to-alls on NVLink, only the ring crosses nodes",
    &hybrid_layout,
    nullptr,
    &every_divisor,
    true,
    &make_prepared<HybridScheme, Scheme, SchemeContext>,
    &hybrid_workspace_bytes,
    &hybrid_schedule};

}  // namespace seqpar
