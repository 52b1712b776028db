// TreeCombine: max all-reduce + one packed sum all-reduce of partial (O, LSE), flat or per node.
#include "runtime/tree_combine.hpp"

#include <cmath>
#include <limits>

#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
bool is_hierarchical(int ranks, int ranks_per_node) {
  return ranks_per_node > 1 && ranks_per_node < ranks;
}

// One all-reduce of `count` fp32 values, flat or as node reduce-scatter, cross all-reduce,
// node all-gather.
CommVolume all_reduce_comm(int64_t count, int ranks, int ranks_per_node) {
  CommVolume v;
  if (!is_hierarchical(ranks, ranks_per_node)) {
    v[CommOp::kAllReduce] = 1;
    v.bytes_sent = ranks > 1 ? count * 4 : 0;
    return v;
  }
  const int64_t r = ranks_per_node;
  const int64_t slice = (count + r - 1) / r;  // fp32 values per local rank
  v[CommOp::kReduceScatter] = 1;
  v[CommOp::kAllReduce] = 1;
  v[CommOp::kAllGather] = 1;
  v.bytes_sent = (r - 1) * slice * 4 + slice * 4 + (r - 1) * slice * 4;
  return v;
}

}  // namespace

CommVolume tree_combine_comm(const CombineShape& shape, int ranks, int ranks_per_node) {
  CommVolume v = all_reduce_comm(shape.lse_elems(), ranks, ranks_per_node);            // max of LSE
  v += all_reduce_comm(shape.out_elems() + shape.lse_elems(), ranks, ranks_per_node);  // num, den
  return v;
}

StatusOr<std::unique_ptr<TreeCombine>> TreeCombine::create(Communicator& comm, int ranks_per_node,
                                                           const CombineShape& shape,
                                                           const KernelTarget& target) {
  SEQPAR_REQUIRE(target.device == Device::kHost, StatusCode::kUnsupported, "tree combine on ",
                 device_name(target.device),
                 " memory is not supported yet: its weighting and normalising loops run on the "
                 "host");
  std::unique_ptr<TreeCombine> c(new TreeCombine(comm, shape, target));
  if (is_hierarchical(comm.size(), ranks_per_node)) {
    SEQPAR_ASSIGN_OR_RETURN(c->node_, comm.split(comm.rank() / ranks_per_node, comm.rank()));
    SEQPAR_ASSIGN_OR_RETURN(c->cross_, comm.split(comm.rank() % ranks_per_node, comm.rank()));
    c->subgroups_[0] = c->node_.get();
    c->subgroups_[1] = c->cross_.get();
  }
  const size_t max_bytes = c->padded(shape.lse_elems()) * sizeof(float);
  const size_t packed_bytes = c->padded(shape.out_elems() + shape.lse_elems()) * sizeof(float);
  const size_t node = c->node_ ? static_cast<size_t>(c->node_->size()) : 1;
  const size_t slice_bytes = c->node_ ? packed_bytes / node : 0;
  WorkspaceArena arena;
  arena.add(c->max_, max_bytes);
  arena.add(c->packed_, packed_bytes);
  arena.add(c->slice_, slice_bytes);
  SEQPAR_RETURN_IF_ERROR(arena.allocate(c->workspace_, target.device));
  // The padding is reduced but never read.
  SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(c->workspace_.data(), c->workspace_.bytes(), target));
  return c;
}

size_t TreeCombine::padded(int64_t count) const {
  const int64_t r = node_ ? node_->size() : 1;
  return static_cast<size_t>((count + r - 1) / r * r);
}

Status TreeCombine::all_reduce(float* data, int64_t count, ReduceOp op) {
  if (!node_) return comm_.all_reduce(data, data, static_cast<size_t>(count), DType::kF32, op);
  const size_t slice = padded(count) / static_cast<size_t>(node_->size());
  SEQPAR_RETURN_IF_ERROR(node_->reduce_scatter(data, slice_, slice, DType::kF32, op));
  SEQPAR_RETURN_IF_ERROR(cross_->all_reduce(slice_, slice_, slice, DType::kF32, op));
  return node_->all_gather(slice_, data, slice * sizeof(float));
}

Status TreeCombine::combine(float* out, float* lse, int64_t keep_begin, int64_t keep_end) {
  const int64_t S = shape_.seq, H = shape_.heads, D = shape_.head_dim;
  const int64_t lse_elems = shape_.lse_elems(), out_elems = shape_.out_elems();
  // max_ (B, H, S) = max over ranks of lse
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::copy(max_, lse, static_cast<size_t>(lse_elems) * sizeof(float), target_));
  SEQPAR_RETURN_IF_ERROR(all_reduce(max_, lse_elems, ReduceOp::kMax));

  // packed_ = [num (B, S, H, D) = out * w | den (B, H, S) = w], w = exp(lse - max) (0 if masked)
  float* num = packed_;
  float* den = packed_ + out_elems;
  for (int64_t b = 0; b < shape_.batch; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t stat = (b * H + h) * S + s;
        const int64_t row = ((b * S + s) * H + h) * D;
        const float w = lse[stat] == kNegInf ? 0.0f : std::exp(lse[stat] - max_[stat]);
        den[stat] = w;
        for (int64_t d = 0; d < D; ++d) num[row + d] = out[row + d] * w;
      }
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_reduce(packed_, out_elems + lse_elems, ReduceOp::kSum));

  for (int64_t b = keep_begin; b < keep_end; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t stat = (b * H + h) * S + s;
        const int64_t row = ((b * S + s) * H + h) * D;
        const float total = den[stat];  // > 0 unless every rank masked the row
        const float inv = total > 0.0f ? 1.0f / total : 0.0f;
        for (int64_t d = 0; d < D; ++d) out[row + d] = num[row + d] * inv;
        lse[stat] = total > 0.0f ? max_[stat] + std::log(total) : kNegInf;
      }
    }
  }
  return Status::ok();
}

CommVolume TreeCombine::subgroup_comm() const {
  CommVolume v;
  for (const Communicator* c : {node_.get(), cross_.get()}) {
    if (c == nullptr) continue;
    for (size_t op = 0; op < v.calls.size(); ++op) {
      v.calls[op] += c->stats().ops[op].calls;
      v.bytes_sent += c->stats().ops[op].bytes_sent;
    }
  }
  return v;
}

}  // namespace seqpar
