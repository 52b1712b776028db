// TreeCombine: max all-reduce + one packed sum all-reduce of partial (O, LSE), flat or per node.
#include "runtime/tree_combine.hpp"

#include <cmath>
#include <limits>

#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include "core/cuda_check.hpp"
#include "runtime/cuda/tree_combine_launch.hpp"
#endif

namespace seqpar {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
bool is_hierarchical(int ranks, int ranks_per_node) {
  return ranks_per_node > 1 && ranks_per_node < ranks;
}

// Values per buffer once padded to a multiple of the node size (hierarchical; else as is).
int64_t padded_count(int64_t count, int node) { return (count + node - 1) / node * node; }

}  // namespace

void TreeCombine::Buffers::add_to(WorkspaceArena& arena, const CombineShape& shape, int ranks,
                                  int ranks_per_node) {
  const bool tiered = is_hierarchical(ranks, ranks_per_node);
  const int node = tiered ? ranks_per_node : 1;
  const int64_t packed_count = padded_count(shape.out_elems() + shape.lse_elems(), node);
  arena.add(max, static_cast<size_t>(padded_count(shape.lse_elems(), node)) * sizeof(float));
  arena.add(packed, static_cast<size_t>(packed_count) * sizeof(float));
  arena.add(slice, tiered ? static_cast<size_t>(packed_count / node) * sizeof(float) : 0);
}

size_t TreeCombine::workspace_bytes_for(const CombineShape& shape, int ranks, int ranks_per_node) {
  return arena_bytes<Buffers>(shape, ranks, ranks_per_node);
}

void TreeCombine::schedule(const CombineShape& shape, int ranks, int ranks_per_node,
                           ScheduleSink& out) {
  const bool tiered = is_hierarchical(ranks, ranks_per_node);
  for (const int64_t count : {shape.lse_elems(), shape.out_elems() + shape.lse_elems()}) {
    out.step(StepOverlap::kSerial);
    for (int r = 0; r < ranks; ++r) {
      if (!tiered) {
        out.collective(r, Collective::kAllReduce, RankGroup::all(ranks), count * 4);
        continue;
      }
      const int node = ranks_per_node;
      const int64_t slice_bytes = padded_count(count, node) / node * 4;
      const RankGroup node_group{r / node * node, node, 1};
      const RankGroup cross_group{r % node, ranks / node, node};
      out.collective(r, Collective::kReduceScatter, node_group, slice_bytes);
      out.collective(r, Collective::kAllReduce, cross_group, slice_bytes);
      out.collective(r, Collective::kAllGather, node_group, slice_bytes);
    }
  }
}

StatusOr<std::unique_ptr<TreeCombine>> TreeCombine::create(Communicator& comm, int ranks_per_node,
                                                           const CombineShape& shape,
                                                           const KernelTarget& target) {
#ifndef SEQPAR_HAVE_CUDA
  SEQPAR_REQUIRE(target.device == Device::kHost, StatusCode::kUnsupported, "tree combine on ",
                 device_name(target.device), " memory: this build has no CUDA toolkit");
#endif
  std::unique_ptr<TreeCombine> c(new TreeCombine(comm, shape, target));
  if (is_hierarchical(comm.size(), ranks_per_node)) {
    SEQPAR_ASSIGN_OR_RETURN(c->node_, comm.split(comm.rank() / ranks_per_node, comm.rank()));
    SEQPAR_ASSIGN_OR_RETURN(c->cross_, comm.split(comm.rank() % ranks_per_node, comm.rank()));
    c->subgroups_[0] = c->node_.get();
    c->subgroups_[1] = c->cross_.get();
  }
  WorkspaceArena arena;
  c->buf_.add_to(arena, shape, comm.size(), ranks_per_node);
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
  SEQPAR_RETURN_IF_ERROR(node_->reduce_scatter(data, buf_.slice, slice, DType::kF32, op));
  SEQPAR_RETURN_IF_ERROR(cross_->all_reduce(buf_.slice, buf_.slice, slice, DType::kF32, op));
  return node_->all_gather(buf_.slice, data, slice * sizeof(float));
}

Status TreeCombine::combine_on_device(float* out, float* lse, int64_t keep_begin,
                                      int64_t keep_end) {
#ifdef SEQPAR_HAVE_CUDA
  const int64_t out_elems = shape_.out_elems(), lse_elems = shape_.lse_elems();
  const cuda_tree_combine::CombineRows rows{shape_.batch,    shape_.seq,  shape_.heads,
                                            shape_.head_dim, out,         lse,
                                            buf_.max,        buf_.packed, buf_.packed + out_elems,
                                            keep_begin,      keep_end};
  const auto stream = static_cast<cudaStream_t>(target_.stream);
  SEQPAR_CUDA_CHECK(cuda_tree_combine::launch_weigh(rows, stream));
  SEQPAR_RETURN_IF_ERROR(all_reduce(buf_.packed, out_elems + lse_elems, ReduceOp::kSum));
  SEQPAR_CUDA_CHECK(cuda_tree_combine::launch_normalise(rows, stream));
  return Status::ok();
#else
  (void)out, (void)lse, (void)keep_begin, (void)keep_end;
  return SEQPAR_FAIL(StatusCode::kUnsupported, "tree combine on a device: no CUDA toolkit");
#endif
}

Status TreeCombine::combine(float* out, float* lse, int64_t keep_begin, int64_t keep_end) {
  const int64_t S = shape_.seq, H = shape_.heads, D = shape_.head_dim;
  const int64_t lse_elems = shape_.lse_elems(), out_elems = shape_.out_elems();
  // max (B, H, S) = max over ranks of lse
  SEQPAR_RETURN_IF_ERROR(
      buffer_ops::copy(buf_.max, lse, static_cast<size_t>(lse_elems) * sizeof(float), target_));
  SEQPAR_RETURN_IF_ERROR(all_reduce(buf_.max, lse_elems, ReduceOp::kMax));

  // packed = [num (B, S, H, D) = out * w | den (B, H, S) = w], w = exp(lse - max) (0 if masked)
  float* num = buf_.packed;
  float* den = buf_.packed + out_elems;
  if (target_.device != Device::kHost) return combine_on_device(out, lse, keep_begin, keep_end);
  for (int64_t b = 0; b < shape_.batch; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t stat = (b * H + h) * S + s;
        const int64_t row = ((b * S + s) * H + h) * D;
        const float w = lse[stat] == kNegInf ? 0.0f : std::exp(lse[stat] - buf_.max[stat]);
        den[stat] = w;
        for (int64_t d = 0; d < D; ++d) num[row + d] = out[row + d] * w;
      }
    }
  }
  SEQPAR_RETURN_IF_ERROR(all_reduce(buf_.packed, out_elems + lse_elems, ReduceOp::kSum));

  for (int64_t b = keep_begin; b < keep_end; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t stat = (b * H + h) * S + s;
        const int64_t row = ((b * S + s) * H + h) * D;
        const float total = den[stat];  // > 0 unless every rank masked the row
        const float inv = total > 0.0f ? 1.0f / total : 0.0f;
        for (int64_t d = 0; d < D; ++d) out[row + d] = num[row + d] * inv;
        lse[stat] = total > 0.0f ? buf_.max[stat] + std::log(total) : kNegInf;
      }
    }
  }
  return Status::ok();
}

}  // namespace seqpar
