// cpu_merge_partials: merges a partial (out2, lse2) into the running (out, lse), row by row.
#include "attention/cpu_block_attention.hpp"
#include "attention/cpu_tile_ops.hpp"

namespace seqpar {

void cpu_merge_partials(float* out, float* lse, const float* out2, const float* lse2, int64_t batch,
                        int64_t seq, int64_t heads, int64_t head_dim) {
  // out, out2 are (B, S, H, D); lse, lse2 are (B, H, S)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < seq; ++i) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t row = ((b * seq + i) * heads + h) * head_dim;
        const int64_t stat = (b * heads + h) * seq + i;
        cpu_tiles::merge_row(out + row, lse + stat, out2 + row, lse2[stat], head_dim);
      }
    }
  }
}

}  // namespace seqpar
