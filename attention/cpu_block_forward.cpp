// cpu_block_forward: blockwise attention forward on the CPU (online softmax, fp32 accumulation).
// For each (batch, kv head) a query tile holds every q head of the GQA group for a few
// positions; each key tile is converted to fp32 once and used by all of them. Tiles whose pairs
// the mask drops entirely are skipped; tiles it keeps entirely skip the per-pair test.
#include <algorithm>
#include <array>
#include <cmath>

#include "attention/cpu_block_attention.hpp"
#include "attention/cpu_tile_ops.hpp"

namespace seqpar {

using namespace cpu_tiles;

namespace {

// Per-call fp32 working set, carved from the caller's scratch or the thread's own.
struct ForwardTiles {
  float* q;        // (rows, D) scaled queries: row = position * group + head in group
  float* k_t;      // (D, kTileKeys) keys, transposed, zero columns past the block end
  float* v;        // (kTileKeys, D)
  float* s;        // (rows, kTileKeys) scores, then probabilities
  float* o;        // (rows, D) unnormalised output
  float* row_max;  // (rows)
  float* row_sum;  // (rows)
  float* row_in;   // (D) one converted key row
};

// Floats of each region of ForwardTiles, in order.
RegionSizes<8> forward_tile_sizes(int64_t rows, int64_t d) {
  return {{rows * d, d * kTileKeys, kTileKeys * d, rows * kTileKeys, rows * d, rows, rows, d}};
}

ForwardTiles carve_forward_tiles(int64_t rows, int64_t d, float* given) {
  const RegionSizes<8> sizes = forward_tile_sizes(rows, d);
  ForwardTiles t{};
  sizes.carve(kernel_scratch(given, static_cast<size_t>(sizes.total())),
              {&t.q, &t.k_t, &t.v, &t.s, &t.o, &t.row_max, &t.row_sum, &t.row_in});
  return t;
}

// Online softmax update of one row against a score row (kTileKeys, -inf where dropped): turns
// the scores into probabilities relative to the new running max and rescales the running sum
// and output. Returns false when the row has still seen no kept key.
bool online_softmax_row(float* s, float* running_max, float* running_sum, float* o, int64_t d) {
  const float m = row_max(s, kTileKeys, *running_max);
  if (m == kNegInf) return false;
  exp_shifted_row(s, kTileKeys, m);
  const float alpha = std::exp(*running_max - m);  // 0 when the row had no kept key yet
  if (alpha != 1.0f) {
    for (int64_t e = 0; e < d; ++e) o[e] *= alpha;
  }
  *running_sum = *running_sum * alpha + row_sum(s, kTileKeys);
  *running_max = m;
  return true;
}

}  // namespace

size_t cpu_tiles::cpu_forward_scratch_floats(const BlockShape& shape) {
  const int64_t group = shape.heads_q / shape.heads_kv;
  return static_cast<size_t>(
      forward_tile_sizes(tile_positions(group) * group, shape.head_dim).total());
}

void cpu_block_forward(const BlockForwardParams& p) {
  const BlockShape& sh = p.shape;
  const int64_t d = sh.head_dim;
  const int64_t group = sh.heads_q / sh.heads_kv;
  const int64_t tile_q = tile_positions(group);
  const ForwardTiles t = carve_forward_tiles(tile_q * group, d, p.scratch);
  std::array<int64_t, kTileRows> q_pos{};  // positions of the query tile
  std::array<int64_t, kTileKeys> k_pos{};  // positions of the key tile

  for (int64_t b = 0; b < sh.batch; ++b) {
    for (int64_t g = 0; g < sh.heads_kv; ++g) {
      for (int64_t q0 = 0; q0 < sh.seq_q; q0 += tile_q) {
        p.progress();
        const int64_t nq = std::min(tile_q, sh.seq_q - q0);
        const int64_t rows = nq * group;
        const PositionRange q_range = position_range(p.q_pos, q0, q0 + nq);
        for (int64_t i = 0; i < nq; ++i) {
          q_pos[i] = p.q_pos.at(q0 + i);
          // q[b, q0 + i, g * group : (g + 1) * group, :] is contiguous
          load_floats(p.q, p.dtype, ((b * sh.seq_q + q0 + i) * sh.heads_q + g * group) * d,
                      group * d, t.q + i * group * d);
        }
        for (int64_t e = 0; e < rows * d; ++e) t.q[e] *= p.softmax_scale;
        for (int64_t e = 0; e < rows * d; ++e) t.o[e] = 0.0f;
        for (int64_t r = 0; r < rows; ++r) {
          t.row_max[r] = kNegInf;
          t.row_sum[r] = 0.0f;
        }

        for (int64_t k0 = 0; k0 < sh.seq_k; k0 += kTileKeys) {
          const int64_t nk = std::min(kTileKeys, sh.seq_k - k0);
          const PositionRange k_range = position_range(p.k_pos, k0, k0 + nk);
          if (!block_may_have_work(p.mask, q_range, k_range)) continue;
          const bool fully_kept = block_fully_kept(p.mask, q_range, k_range);
          for (int64_t j = 0; j < kTileKeys; ++j) {
            if (j < nk) {
              const int64_t row =
                  ((b * sh.seq_k + k0 + j) * sh.heads_kv + g) * d;  // k[b, k0+j, g, :]
              k_pos[j] = p.k_pos.at(k0 + j);
              load_floats(p.k, p.dtype, row, d, t.row_in);
              load_floats(p.v, p.dtype, row, d, t.v + j * d);
            } else {
              for (int64_t e = 0; e < d; ++e) t.row_in[e] = 0.0f;
            }
            store_column(t.row_in, d, j, t.k_t);
          }

          tile_products(t.q, rows, t.k_t, d, t.s);
          for (int64_t r = 0; r < rows; ++r) {
            float* s = t.s + r * kTileKeys;
            const int64_t qp = q_pos[r / group];
            if (!fully_kept) {
              for (int64_t j = 0; j < nk; ++j) {
                if (!attention_pair_kept(p.mask, qp, k_pos[j])) s[j] = kNegInf;
              }
            }
            for (int64_t j = nk; j < kTileKeys; ++j) s[j] = kNegInf;
            float* o = t.o + r * d;
            if (online_softmax_row(s, t.row_max + r, t.row_sum + r, o, d)) {
              add_weighted_rows(o, s, 1, nk, t.v, d, d, 1.0f);
            }
          }
        }

        // Normalise and write (or merge) each row: out[b, q0+i, h, :], lse[b, h, q0+i].
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = q0 + r / group;
          const int64_t h = g * group + r % group;
          float* out = p.out + ((b * sh.seq_q + i) * sh.heads_q + h) * d;
          float* lse = p.lse + (b * sh.heads_q + h) * sh.seq_q + i;
          float* o = t.o + r * d;
          const bool kept_any = t.row_sum[r] > 0.0f;
          const float inv = kept_any ? 1.0f / t.row_sum[r] : 0.0f;
          for (int64_t e = 0; e < d; ++e) o[e] *= inv;
          const float row_lse = kept_any ? t.row_max[r] + std::log(t.row_sum[r]) : kNegInf;
          if (p.accumulate) {
            merge_row(out, lse, o, row_lse, d);
          } else {
            for (int64_t e = 0; e < d; ++e) out[e] = o[e];
            *lse = row_lse;
          }
        }
      }
    }
  }
}

}  // namespace seqpar
