// Deterministic inputs from (seed, tensor, global index).
#include "harness/test_data.hpp"

#include "core/random.hpp"

namespace seqpar {

int64_t input_heads(const AttentionProblem& p, InputTensor tensor) {
  return tensor == InputTensor::kK || tensor == InputTensor::kV ? p.heads_kv : p.heads_q;
}

namespace {

// Element (b, t, h, d) of the global (B, S, H, D) tensor, rounded to the storage dtype.
float input_value(const AttentionProblem& p, uint64_t seed, InputTensor tensor, int64_t heads,
                  int64_t b, int64_t t, int64_t h, int64_t d) {
  const uint64_t index = static_cast<uint64_t>(((b * p.seq + t) * heads + h) * p.head_dim + d);
  return round_to_dtype(uniform_pm1(seed, static_cast<uint64_t>(tensor), index), p.dtype);
}

}  // namespace

void fill_input_shard(const AttentionProblem& p, const Layout& layout, int rank, uint64_t seed,
                      InputTensor tensor, void* shard) {
  const int64_t heads = input_heads(p, tensor);
  const int64_t local = layout.local_seq(rank);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t i = 0; i < local; ++i) {
      const int64_t t = layout.global_position(rank, i);
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t d = 0; d < p.head_dim; ++d) {
          const size_t at = static_cast<size_t>(((b * local + i) * heads + h) * p.head_dim + d);
          store_float(shard, p.dtype, at, input_value(p, seed, tensor, heads, b, t, h, d));
        }
      }
    }
  }
}

void fill_input_global(const AttentionProblem& p, uint64_t seed, InputTensor tensor,
                       double* global) {
  const int64_t heads = input_heads(p, tensor);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t t = 0; t < p.seq; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t d = 0; d < p.head_dim; ++d) {
          global[((b * p.seq + t) * heads + h) * p.head_dim + d] =
              input_value(p, seed, tensor, heads, b, t, h, d);
        }
      }
    }
  }
}

void fill_input_token(const AttentionProblem& p, uint64_t seed, InputTensor tensor, int64_t b,
                      int64_t t, void* row) {
  const int64_t heads = input_heads(p, tensor);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t d = 0; d < p.head_dim; ++d) {
      store_float(row, p.dtype, static_cast<size_t>(h * p.head_dim + d),
                  input_value(p, seed, tensor, heads, b, t, h, d));
    }
  }
}

Status RankTensors::allocate(const AttentionProblem& p, int64_t local_seq) {
  const size_t elt = dtype_size(p.dtype);
  const size_t q_bytes = static_cast<size_t>(p.batch * local_seq * p.heads_q * p.head_dim) * elt;
  const size_t kv_bytes = static_cast<size_t>(p.batch * local_seq * p.heads_kv * p.head_dim) * elt;
  for (HostBuffer* b : {&q, &dout, &out, &dq}) SEQPAR_RETURN_IF_ERROR(b->allocate(q_bytes));
  for (HostBuffer* b : {&k, &v, &dk, &dv}) SEQPAR_RETURN_IF_ERROR(b->allocate(kv_bytes));
  return lse.allocate(static_cast<size_t>(p.batch * p.heads_q * local_seq) * sizeof(float));
}

}  // namespace seqpar
