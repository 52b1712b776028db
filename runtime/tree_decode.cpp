// TreeDecode: local partial against the cache shard + TreeCombine (see tree_decode.hpp).
#include "runtime/tree_decode.hpp"

#include <cstring>

#include "attention/dispatch.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

CombineShape combine_shape(const DecodeProblem& p) {
  return {p.batch, p.q_len, p.heads_q, p.head_dim};
}

}  // namespace

CommVolume tree_decode_comm(const DecodeProblem& p, int ranks, int ranks_per_node) {
  return tree_combine_comm(combine_shape(p), ranks, ranks_per_node);
}

StatusOr<std::unique_ptr<DecodeAttention>> TreeDecode::create(Communicator& comm,
                                                              const DecodeProblem& problem,
                                                              const KvCacheShape& cache,
                                                              int ranks_per_node) {
  std::unique_ptr<TreeDecode> d(new TreeDecode(comm, problem, ranks_per_node));
  SEQPAR_ASSIGN_OR_RETURN(
      d->combine_,
      TreeCombine::create(comm, ranks_per_node, combine_shape(problem), {Device::kHost, nullptr}));
  const CombineShape rows = combine_shape(problem);
  const int64_t local_capacity = KvCache::local_capacity_for(cache, comm.size());
  const BlockShape block{
      1, problem.q_len, local_capacity, problem.heads_q, cache.heads_kv, problem.head_dim};
  WorkspaceArena arena;
  arena.add(d->out_, static_cast<size_t>(rows.out_elems()) * sizeof(float));
  arena.add(d->lse_, static_cast<size_t>(rows.lse_elems()) * sizeof(float));
  arena.add(d->kernel_scratch_, block_kernel_scratch_bytes(block, {Device::kHost, nullptr}, false));
  SEQPAR_RETURN_IF_ERROR(arena.allocate(d->workspace_));
  return std::unique_ptr<DecodeAttention>(std::move(d));
}

CommVolume TreeDecode::expected_comm(const KvCache&) const {
  return tree_decode_comm(problem_, comm_.size(), ranks_per_node_);
}

Status TreeDecode::step(const void* q, const KvCache& cache, void* out, float* lse) {
  const DecodeProblem& p = problem_;
  const KvCacheShape& c = cache.shape();
  const int64_t n = p.q_len;
  const size_t elt = dtype_size(c.dtype);
  const size_t q_batch = static_cast<size_t>(n * p.heads_q * p.head_dim);  // one batch's rows
  const size_t kv_batch = static_cast<size_t>(cache.local_capacity() * c.heads_kv * c.head_dim);

  // The shard is (B, local capacity, Hkv, D): one kernel call per batch over its valid rows.
  BlockForwardParams block;
  block.shape = {1, n, cache.local_length(), p.heads_q, c.heads_kv, p.head_dim};
  block.dtype = c.dtype;
  block.q_pos = PositionMap::affine(cache.length() - n);
  block.k_pos = PositionMap::indexed(cache.positions_of(comm_.rank()));
  block.mask = MaskKind::kCausal;
  block.softmax_scale = p.softmax_scale;
  block.scratch = kernel_scratch_;
  for (int64_t b = 0; b < p.batch; ++b) {
    block.q = static_cast<const char*>(q) + static_cast<size_t>(b) * q_batch * elt;
    block.k = static_cast<const char*>(cache.k()) + static_cast<size_t>(b) * kv_batch * elt;
    block.v = static_cast<const char*>(cache.v()) + static_cast<size_t>(b) * kv_batch * elt;
    block.out = out_ + static_cast<size_t>(b) * q_batch;        // (1, n, Hq, D)
    block.lse = lse_ + static_cast<size_t>(b * p.heads_q * n);  // (1, Hq, n)
    SEQPAR_RETURN_IF_ERROR(run_block_forward(block, {Device::kHost, nullptr}));
  }
  SEQPAR_RETURN_IF_ERROR(combine_->combine(out_, lse_, 0, p.batch));
  convert_from_float(out_, out, c.dtype, static_cast<size_t>(p.batch) * q_batch);
  std::memcpy(lse, lse_, static_cast<size_t>(p.batch * p.heads_q * n) * sizeof(float));
  return Status::ok();
}

}  // namespace seqpar
