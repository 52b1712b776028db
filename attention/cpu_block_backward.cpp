// cpu_block_backward: blockwise attention backward on the CPU, fp32. The outer loop runs over
// key tiles (dK, dV of a tile stay in scratch until every query tile has been seen), the inner
// loop over query tiles holding all q heads of the GQA group; dQ is added straight into the
// output. Probabilities are recomputed from the FINAL lse: p = exp(s - lse), so a block's
// gradients are exact pieces of the whole problem's gradients.
#include <algorithm>
#include <array>

#include "attention/cpu_block_attention.hpp"
#include "attention/cpu_tile_ops.hpp"

namespace seqpar {

using namespace cpu_tiles;

namespace {

// Per-call fp32 working set, carved from the thread's scratch.
struct BackwardTiles {
  float* k;          // (kTileKeys, D)
  float* k_t;        // (D, kTileKeys) zero columns past the block end
  float* v_t;        // (D, kTileKeys) zero columns past the block end
  float* dk;         // (kTileKeys, D) this key tile's dK, summed over the group's q heads
  float* dv;         // (kTileKeys, D)
  float* q;          // (rows, D) scaled queries: row = position * group + head in group
  float* dout;       // (rows, D)
  float* p;          // (rows, kTileKeys) probabilities
  float* ds;         // (rows, kTileKeys) dP, then dS = P * (dP - delta)
  float* row_lse;    // (rows)
  float* row_delta;  // (rows)
  float* row_in;     // (D) one converted v row
};

// Floats of each region of BackwardTiles, in order.
RegionSizes<12> backward_tile_sizes(int64_t rows, int64_t d) {
  const int64_t tile = kTileKeys * d;
  return {{tile, tile, tile, tile, tile, rows * d, rows * d, rows * kTileKeys, rows * kTileKeys,
           rows, rows, d}};
}

BackwardTiles carve_backward_tiles(int64_t rows, int64_t d, float* given) {
  const RegionSizes<12> sizes = backward_tile_sizes(rows, d);
  BackwardTiles t{};
  sizes.carve(kernel_scratch(given, static_cast<size_t>(sizes.total())),
              {&t.k, &t.k_t, &t.v_t, &t.dk, &t.dv, &t.q, &t.dout, &t.p, &t.ds, &t.row_lse,
               &t.row_delta, &t.row_in});
  return t;
}

}  // namespace

size_t cpu_block_scratch_floats(const BlockShape& shape, bool backward) {
  const size_t forward_floats = cpu_forward_scratch_floats(shape);
  if (!backward) return forward_floats;
  const int64_t group = shape.heads_q / shape.heads_kv;
  const auto backward_floats = static_cast<size_t>(
      backward_tile_sizes(tile_positions(group) * group, shape.head_dim).total());
  return std::max(backward_floats, forward_floats);
}

void cpu_block_backward(const BlockBackwardParams& p) {
  const BlockShape& sh = p.shape;
  const int64_t d = sh.head_dim;
  const int64_t group = sh.heads_q / sh.heads_kv;
  const int64_t tile_q = tile_positions(group);
  const bool want_dkv = p.dk != nullptr;
  if (p.dq == nullptr && !want_dkv) return;
  const BackwardTiles t = carve_backward_tiles(tile_q * group, d, p.scratch);
  std::array<int64_t, kTileRows> q_pos{};  // positions of the query tile
  std::array<int64_t, kTileKeys> k_pos{};  // positions of the key tile

  for (int64_t b = 0; b < sh.batch; ++b) {
    for (int64_t g = 0; g < sh.heads_kv; ++g) {
      for (int64_t k0 = 0; k0 < sh.seq_k; k0 += kTileKeys) {
        p.progress();
        const int64_t nk = std::min(kTileKeys, sh.seq_k - k0);
        const PositionRange k_range = position_range(p.k_pos, k0, k0 + nk);
        for (int64_t j = 0; j < kTileKeys; ++j) {
          if (j < nk) {
            const int64_t row =
                ((b * sh.seq_k + k0 + j) * sh.heads_kv + g) * d;  // k[b, k0+j, g, :]
            k_pos[j] = p.k_pos.at(k0 + j);
            load_floats(p.k, p.dtype, row, d, t.k + j * d);
            load_floats(p.v, p.dtype, row, d, t.row_in);
            store_column(t.k + j * d, d, j, t.k_t);
          } else {
            for (int64_t e = 0; e < d; ++e) t.row_in[e] = 0.0f;
            store_column(t.row_in, d, j, t.k_t);
          }
          store_column(t.row_in, d, j, t.v_t);
        }
        for (int64_t e = 0; e < nk * d; ++e) t.dk[e] = 0.0f;
        for (int64_t e = 0; e < nk * d; ++e) t.dv[e] = 0.0f;

        for (int64_t q0 = 0; q0 < sh.seq_q; q0 += tile_q) {
          const int64_t nq = std::min(tile_q, sh.seq_q - q0);
          const int64_t rows = nq * group;
          const PositionRange q_range = position_range(p.q_pos, q0, q0 + nq);
          if (!block_may_have_work(p.mask, q_range, k_range)) continue;
          const bool fully_kept = block_fully_kept(p.mask, q_range, k_range);
          for (int64_t i = 0; i < nq; ++i) {
            q_pos[i] = p.q_pos.at(q0 + i);
            // q[b, q0 + i, g * group : (g + 1) * group, :] and dout likewise are contiguous
            const int64_t first = ((b * sh.seq_q + q0 + i) * sh.heads_q + g * group) * d;
            load_floats(p.q, p.dtype, first, group * d, t.q + i * group * d);
            load_floats(p.dout, p.dtype, first, group * d, t.dout + i * group * d);
            for (int64_t u = 0; u < group; ++u) {
              const int64_t stat =
                  (b * sh.heads_q + g * group + u) * sh.seq_q + q0 + i;  // [b, h, i]
              t.row_lse[i * group + u] = p.lse[stat];
              t.row_delta[i * group + u] = p.delta[stat];
            }
          }
          for (int64_t e = 0; e < rows * d; ++e) t.q[e] *= p.softmax_scale;

          // P = exp(Q K^T - lse) with dropped pairs (and rows with no kept key at all) 0.
          tile_products(t.q, rows, t.k_t, d, t.p);
          for (int64_t r = 0; r < rows; ++r) {
            float* s = t.p + r * kTileKeys;
            const float lse = t.row_lse[r];
            const int64_t qp = q_pos[r / group];
            if (!fully_kept) {
              for (int64_t j = 0; j < nk; ++j) {
                if (!attention_pair_kept(p.mask, qp, k_pos[j])) s[j] = kNegInf;
              }
            }
            for (int64_t j = nk; j < kTileKeys; ++j) s[j] = kNegInf;
            if (lse == kNegInf) {
              for (int64_t j = 0; j < kTileKeys; ++j) s[j] = 0.0f;
            } else {
              exp_shifted_row(s, kTileKeys, lse);
            }
          }

          // dS = P * (dO V^T - delta)
          tile_products(t.dout, rows, t.v_t, d, t.ds);
          for (int64_t r = 0; r < rows; ++r) {
            const float* pr = t.p + r * kTileKeys;
            float* dsr = t.ds + r * kTileKeys;
            const float delta = t.row_delta[r];
            for (int64_t j = 0; j < kTileKeys; ++j) dsr[j] = pr[j] * (dsr[j] - delta);
          }

          if (want_dkv) {  // dV += P^T dO, dK += scale * dS^T Q (the tile's q is pre-scaled)
            for (int64_t j = 0; j < nk; ++j) {
              add_weighted_rows(t.dv + j * d, t.p + j, kTileKeys, rows, t.dout, d, d, 1.0f);
              add_weighted_rows(t.dk + j * d, t.ds + j, kTileKeys, rows, t.q, d, d, 1.0f);
            }
          }
          if (p.dq != nullptr) {  // dQ += scale * dS K, into dq[b, q0+i, h, :]
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t h = g * group + r % group;
              float* dq = p.dq + ((b * sh.seq_q + q0 + r / group) * sh.heads_q + h) * d;
              add_weighted_rows(dq, t.ds + r * kTileKeys, 1, nk, t.k, d, d, p.softmax_scale);
            }
          }
        }

        if (want_dkv) {  // dk[b, k0+j, g, :] += tile dK, and dv likewise
          for (int64_t j = 0; j < nk; ++j) {
            const int64_t row = ((b * sh.seq_k + k0 + j) * sh.heads_kv + g) * d;
            for (int64_t e = 0; e < d; ++e) p.dk[row + e] += t.dk[j * d + e];
            for (int64_t e = 0; e < d; ++e) p.dv[row + e] += t.dv[j * d + e];
          }
        }
      }
    }
  }
}

}  // namespace seqpar
