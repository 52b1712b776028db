// cpu_attention_delta: delta = rowsum(dout * out), the per-row term of the softmax backward.
#include "attention/cpu_block_attention.hpp"

namespace seqpar {

void cpu_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch, int64_t seq,
                         int64_t heads, int64_t head_dim, float* delta) {
  // out, dout are (B, S, H, D); delta is (B, H, S). O(S * H * D): no tiles, no scratch.
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < seq; ++i) {
      for (int64_t h = 0; h < heads; ++h) {
        const auto row = static_cast<size_t>(((b * seq + i) * heads + h) * head_dim);
        double sum = 0.0;
        for (size_t e = row; e < row + static_cast<size_t>(head_dim); ++e) {
          sum += static_cast<double>(load_float(out, dtype, e)) * load_float(dout, dtype, e);
        }
        delta[(b * heads + h) * seq + i] = static_cast<float>(sum);
      }
    }
  }
}

}  // namespace seqpar
