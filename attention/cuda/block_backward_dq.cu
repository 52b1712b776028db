// block_backward_dq_kernel: dQ of one (query block, key block) pair, FlashAttention-2 style on
// tensor cores, in its own kernel (no atomics: every dQ row has one owner, so results are
// bitwise reproducible). A CTA owns kBlockM = 64 query rows of one query head and walks the key
// tiles of its kv head, K/V double-buffered through cp.async. Per key tile:
//   S = Q K^T, P = exp(scale * S - lse) (final lse; dropped pairs 0), dP = dO V^T,
//   dS = P * (dP - delta), dQ += dS K;
// at the end dq += scale * dQ (fp32, accumulated like the CPU kernel).
#include <cmath>

#include "attention/cuda/kernel_params.hpp"
#include "attention/cuda/mma_tiles.cuh"

namespace seqpar::cuda_attention {
namespace {

template <int kD>
struct DqTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * kWarpSize;
  static constexpr int kBlockM = 16 * kWarps;  // query rows per CTA
  static constexpr int kBlockN = 64;           // keys per tile
  static constexpr int kTileM = kBlockM * kSmemStride<kD>;
  static constexpr int kTileN = kBlockN * kSmemStride<kD>;
  // Q, dO, then K[2], V[2] (16-bit elements).
  static constexpr int kSmemBytes = (2 * kTileM + 4 * kTileN) * 2;
};

template <class T, int kD>
__global__ void __launch_bounds__(DqTraits<kD>::kThreads)
    block_backward_dq_kernel(const __grid_constant__ BackwardKernelParams p) {
  using Tr = DqTraits<kD>;
  constexpr int kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN;
  SEQPAR_DYNAMIC_SMEM(T, q_tile);         // (kBlockM, kD) padded
  T* do_tile = q_tile + Tr::kTileM;       // (kBlockM, kD) padded
  T* k_tiles = do_tile + Tr::kTileM;      // [2] (kBlockN, kD) padded
  T* v_tiles = k_tiles + 2 * Tr::kTileN;  // [2] (kBlockN, kD) padded

  const KernelShape& sh = p.shape;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % kWarpSize;
  const int warp = tid / kWarpSize;
  const int g = lane / 4;
  const int t = lane % 4;
  const int64_t b = blockIdx.z;
  const int64_t h = blockIdx.y;
  const int64_t kvh = h / sh.group;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kBlockM;
  const int rows_valid = static_cast<int>(min(static_cast<int64_t>(kBlockM), sh.seq_q - m0));

  const int64_t q_stride = sh.heads_q * kD;
  const int64_t kv_stride = sh.heads_kv * kD;
  const int64_t q_first = ((b * sh.seq_q + m0) * sh.heads_q + h) * kD;  // q[b, m0, h, :]
  const T* q_g = static_cast<const T*>(p.q) + q_first;
  const T* do_g = static_cast<const T*>(p.dout) + q_first;
  const T* k_g = static_cast<const T*>(p.k) + (b * sh.seq_k * sh.heads_kv + kvh) * kD;
  const T* v_g = static_cast<const T*>(p.v) + (b * sh.seq_k * sh.heads_kv + kvh) * kD;

  // This thread's two rows: positions, final lse (base 2; -inf: no kept key, P = 0), delta.
  const int row_a = warp * 16 + g;
  const int row_b = row_a + 8;
  const int64_t stat_a = (b * sh.heads_q + h) * sh.seq_q + m0 + row_a;  // [b, h, m0 + row_a]
  const bool valid_a = row_a < rows_valid;
  const bool valid_b = row_b < rows_valid;
  const int64_t qpos_a = valid_a ? position_at(p.q_pos, m0 + row_a) : 0;
  const int64_t qpos_b = valid_b ? position_at(p.q_pos, m0 + row_b) : 0;
  const float lse_a = valid_a ? p.lse[stat_a] * kLog2e : -INFINITY;
  const float lse_b = valid_b ? p.lse[stat_a + 8] * kLog2e : -INFINITY;
  const float delta_a = valid_a ? p.delta[stat_a] : 0.0f;
  const float delta_b = valid_b ? p.delta[stat_a + 8] : 0.0f;
  const PositionRange q_range = warp_position_range(p.q_pos, m0, m0 + rows_valid, lane);

  const int n_tiles = static_cast<int>((sh.seq_k + kBlockN - 1) / kBlockN);
  auto next_tile = [&](int from, TileWork* work) {
    for (; from < n_tiles; ++from) {
      const int64_t k0 = static_cast<int64_t>(from) * kBlockN;
      const int64_t k_end = min(k0 + kBlockN, sh.seq_k);
      *work = tile_work(p.mask, q_range, warp_position_range(p.k_pos, k0, k_end, lane));
      if (work->any) break;
    }
    return from;
  };
  auto load_kv = [&](int tile, int buf) {
    const int64_t k0 = static_cast<int64_t>(tile) * kBlockN;
    const int valid = static_cast<int>(min(static_cast<int64_t>(kBlockN), sh.seq_k - k0));
    load_tile_async<kBlockN, kD, Tr::kThreads>(k_tiles + buf * Tr::kTileN, k_g + k0 * kv_stride,
                                               kv_stride, valid, tid);
    load_tile_async<kBlockN, kD, Tr::kThreads>(v_tiles + buf * Tr::kTileN, v_g + k0 * kv_stride,
                                               kv_stride, valid, tid);
    cp_async_commit();
  };

  TileWork work;
  int tile = next_tile(0, &work);
  if (tile == n_tiles) return;  // no kept pair: dq gets nothing from this block
  load_tile_async<kBlockM, kD, Tr::kThreads>(q_tile, q_g, q_stride, rows_valid, tid);
  load_tile_async<kBlockM, kD, Tr::kThreads>(do_tile, do_g, q_stride, rows_valid, tid);
  cp_async_commit();
  load_kv(tile, 0);

  float dq[kD / 8][4] = {};  // rows (g, g + 8) x columns of 8 d-tiles, unscaled
  int buf = 0;
  while (tile < n_tiles) {
    TileWork next_work;
    const int next = next_tile(tile + 1, &next_work);
    if (next < n_tiles) {
      load_kv(next, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* k_s = k_tiles + buf * Tr::kTileN;
    const T* v_s = v_tiles + buf * Tr::kTileN;
    const int64_t k0 = static_cast<int64_t>(tile) * kBlockN;

    // S = Q K^T and dP = dO V^T: 16 rows x kBlockN keys per warp.
    float s[kBlockN / 8][4] = {};
    float dp[kBlockN / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t qa[4], da[4];
      load_a_fragment<kD>(qa, q_tile, warp * 16, kk * 16, lane);
      load_a_fragment<kD>(da, do_tile, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t kb[4], vb[4];
        load_bt_fragments<kD>(kb, k_s, np * 16, kk * 16, lane);
        load_bt_fragments<kD>(vb, v_s, np * 16, kk * 16, lane);
        mma_16816<T>(s[2 * np], qa, kb[0], kb[1]);
        mma_16816<T>(s[2 * np + 1], qa, kb[2], kb[3]);
        mma_16816<T>(dp[2 * np], da, vb[0], vb[1]);
        mma_16816<T>(dp[2 * np + 1], da, vb[2], vb[3]);
      }
    }

    // P (dropped pairs, keys past the block end and rows without a kept key: 0), then dS in s.
    const bool need_mask = !work.full || k0 + kBlockN > sh.seq_k;
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t col = k0 + nt * 8 + 2 * t + e;
        bool kept_a = lse_a != -INFINITY;
        bool kept_b = lse_b != -INFINITY;
        if (need_mask) {
          const bool in_block = col < sh.seq_k;
          const int64_t kpos = in_block ? position_at(p.k_pos, col) : 0;
          kept_a = kept_a && in_block && attention_pair_kept(p.mask, qpos_a, kpos);
          kept_b = kept_b && in_block && attention_pair_kept(p.mask, qpos_b, kpos);
        }
        const float pa = kept_a ? exp2f(s[nt][e] * p.scale_log2 - lse_a) : 0.0f;
        const float pb = kept_b ? exp2f(s[nt][2 + e] * p.scale_log2 - lse_b) : 0.0f;
        s[nt][e] = pa * (dp[nt][e] - delta_a);
        s[nt][2 + e] = pb * (dp[nt][2 + e] - delta_b);
      }
    }

    // dQ += dS K, dS packed to 16 bits from the accumulators.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t dsa[4];
      pack_a_fragment<T>(dsa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < kD / 16; ++dt) {
        uint32_t kb[4];
        load_b_fragments<kD>(kb, k_s, kk * 16, dt * 16, lane);
        mma_16816<T>(dq[2 * dt], dsa, kb[0], kb[1]);
        mma_16816<T>(dq[2 * dt + 1], dsa, kb[2], kb[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
    tile = next;
    work = next_work;
    buf ^= 1;
  }

  // dq[b, m0 + r, h, :] += scale * dQ
  const int64_t dq_a = q_first + static_cast<int64_t>(row_a) * q_stride;
  const int64_t dq_b = dq_a + 8 * q_stride;
#pragma unroll
  for (int dt = 0; dt < kD / 8; ++dt) {
    const int col = dt * 8 + 2 * t;
    if (valid_a) {
      float2* dst = reinterpret_cast<float2*>(p.dq + dq_a + col);
      float2 v = *dst;
      v.x += p.softmax_scale * dq[dt][0];
      v.y += p.softmax_scale * dq[dt][1];
      *dst = v;
    }
    if (valid_b) {
      float2* dst = reinterpret_cast<float2*>(p.dq + dq_b + col);
      float2 v = *dst;
      v.x += p.softmax_scale * dq[dt][2];
      v.y += p.softmax_scale * dq[dt][3];
      *dst = v;
    }
  }
}

}  // namespace

cudaError_t launch_block_backward_dq(const BackwardKernelParams& p, cudaStream_t stream) {
  return dispatch_dtype_head_dim(p.dtype, p.shape.head_dim, [&]<class T, int kD>() {
    using Tr = DqTraits<kD>;
    return launch_tiled(block_backward_dq_kernel<T, kD>, p, p.shape.seq_q, Tr::kBlockM,
                        p.shape.heads_q, p.shape.batch, Tr::kThreads, Tr::kSmemBytes, stream);
  });
}

}  // namespace seqpar::cuda_attention
