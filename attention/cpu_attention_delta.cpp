// cpu_attention_delta: delta = rowsum(dout * out), the per-row term of the softmax backward.
#include "attention/cpu_block_attention.hpp"
#include "attention/cpu_tile_ops.hpp"

namespace seqpar {

void cpu_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch,
                         int64_t seq, int64_t heads, int64_t head_dim, float* delta) {
  // out, dout are (B, S, H, D); delta is (B, H, S)
  float* o = cpu_tiles::thread_scratch(static_cast<size_t>(2 * head_dim));  // (D) one out row
  float* g = o + head_dim;                                                  // (D) one dout row
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < seq; ++i) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t row = ((b * seq + i) * heads + h) * head_dim;
        cpu_tiles::load_floats(out, dtype, row, head_dim, o);
        cpu_tiles::load_floats(dout, dtype, row, head_dim, g);
        double sum = 0.0;
        for (int64_t e = 0; e < head_dim; ++e) sum += static_cast<double>(o[e]) * g[e];
        delta[(b * heads + h) * seq + i] = static_cast<float>(sum);
      }
    }
  }
}

}  // namespace seqpar
