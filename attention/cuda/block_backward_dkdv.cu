// block_backward_dkdv_kernel: dK and dV of one (query block, key block) pair, FlashAttention-2
// style on tensor cores. A CTA owns kBlockM = 64 keys of one kv head (16 per warp; K and V
// tiles stay in shared memory) and walks every (query head of the GQA group, query tile) pair,
// Q/dO tiles double-buffered through cp.async, so dK/dV are summed over the group inside the
// CTA: no atomics, bitwise reproducible. Per query tile, with the keys as the M dimension:
//   S^T = K Q^T, P^T = exp(scale * S^T - lse) (final lse; dropped pairs 0), dP^T = V dO^T,
//   dS^T = P^T * (dP^T - delta), dV += P^T dO, dK += dS^T Q;
// at the end dk += scale * dK and dv += dV (fp32, accumulated like the CPU kernel).
#include <cmath>

#include "attention/cuda/kernel_params.hpp"
#include "attention/cuda/mma_tiles.cuh"

namespace seqpar::cuda_attention {
namespace {

template <int kD>
struct DkdvTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * kWarpSize;
  static constexpr int kBlockM = 16 * kWarps;  // keys per CTA
  // Queries per tile: the S^T and dP^T accumulators (2 x kBlockN / 2 floats per lane) sit
  // beside dK and dV (2 x kD / 2): 32 at d128 keeps the sum within the register file.
  static constexpr int kBlockN = kD <= 64 ? 64 : 32;
  static constexpr int kTileM = kBlockM * kSmemStride<kD>;
  static constexpr int kTileN = kBlockN * kSmemStride<kD>;
  // K, V, then Q[2], dO[2] (16-bit elements).
  static constexpr int kSmemBytes = (2 * kTileM + 4 * kTileN) * 2;
};

template <class T, int kD>
__global__ void __launch_bounds__(DkdvTraits<kD>::kThreads)
    block_backward_dkdv_kernel(const __grid_constant__ BackwardKernelParams p) {
  using Tr = DkdvTraits<kD>;
  constexpr int kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN;
  SEQPAR_DYNAMIC_SMEM(T, k_tile);          // (kBlockM, kD) padded
  T* v_tile = k_tile + Tr::kTileM;         // (kBlockM, kD) padded
  T* q_tiles = v_tile + Tr::kTileM;        // [2] (kBlockN, kD) padded
  T* do_tiles = q_tiles + 2 * Tr::kTileN;  // [2] (kBlockN, kD) padded

  const KernelShape& sh = p.shape;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % kWarpSize;
  const int warp = tid / kWarpSize;
  const int g = lane / 4;
  const int t = lane % 4;
  const int64_t b = blockIdx.z;
  const int64_t kvh = blockIdx.y;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBlockM;  // first key of the CTA
  const int keys_valid = static_cast<int>(min(static_cast<int64_t>(kBlockM), sh.seq_k - n0));

  const int64_t q_stride = sh.heads_q * kD;
  const int64_t kv_stride = sh.heads_kv * kD;
  const int64_t kv_first = ((b * sh.seq_k + n0) * sh.heads_kv + kvh) * kD;  // k[b, n0, kvh, :]

  // This thread's two key rows and their positions.
  const int key_a = warp * 16 + g;
  const int key_b = key_a + 8;
  const int64_t kpos_a = key_a < keys_valid ? position_at(p.k_pos, n0 + key_a) : 0;
  const int64_t kpos_b = key_b < keys_valid ? position_at(p.k_pos, n0 + key_b) : 0;
  const PositionRange k_range = warp_position_range(p.k_pos, n0, n0 + keys_valid, lane);

  // Work items: (u, query tile) for u < group, u-major; query head h = kvh * group + u.
  const int n_q_tiles = static_cast<int>((sh.seq_q + kBlockN - 1) / kBlockN);
  const int n_items = static_cast<int>(sh.group) * n_q_tiles;
  auto next_item = [&](int from, TileWork* work) {
    for (; from < n_items; ++from) {
      const int64_t m0 = static_cast<int64_t>(from % n_q_tiles) * kBlockN;
      const int64_t m_end = min(m0 + kBlockN, sh.seq_q);
      *work = tile_work(p.mask, warp_position_range(p.q_pos, m0, m_end, lane), k_range);
      if (work->any) break;
    }
    return from;
  };
  auto load_q_do = [&](int item, int buf) {
    const int64_t h = kvh * sh.group + item / n_q_tiles;
    const int64_t m0 = static_cast<int64_t>(item % n_q_tiles) * kBlockN;
    const int valid = static_cast<int>(min(static_cast<int64_t>(kBlockN), sh.seq_q - m0));
    const int64_t first = ((b * sh.seq_q + m0) * sh.heads_q + h) * kD;  // q[b, m0, h, :]
    load_tile_async<kBlockN, kD, Tr::kThreads>(
        q_tiles + buf * Tr::kTileN, static_cast<const T*>(p.q) + first, q_stride, valid, tid);
    load_tile_async<kBlockN, kD, Tr::kThreads>(
        do_tiles + buf * Tr::kTileN, static_cast<const T*>(p.dout) + first, q_stride, valid, tid);
    cp_async_commit();
  };

  TileWork work;
  int item = next_item(0, &work);
  if (item == n_items) return;  // no kept pair: dk, dv get nothing from this block
  load_tile_async<kBlockM, kD, Tr::kThreads>(k_tile, static_cast<const T*>(p.k) + kv_first,
                                             kv_stride, keys_valid, tid);
  load_tile_async<kBlockM, kD, Tr::kThreads>(v_tile, static_cast<const T*>(p.v) + kv_first,
                                             kv_stride, keys_valid, tid);
  cp_async_commit();
  load_q_do(item, 0);

  float dk[kD / 8][4] = {};  // key rows (g, g + 8) x columns of 8 d-tiles, unscaled
  float dv[kD / 8][4] = {};
  int buf = 0;
  while (item < n_items) {
    TileWork next_work;
    const int next = next_item(item + 1, &next_work);
    if (next < n_items) {
      load_q_do(next, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* q_s = q_tiles + buf * Tr::kTileN;
    const T* do_s = do_tiles + buf * Tr::kTileN;
    const int64_t h = kvh * sh.group + item / n_q_tiles;
    const int64_t m0 = static_cast<int64_t>(item % n_q_tiles) * kBlockN;

    // S^T = K Q^T and dP^T = V dO^T: 16 keys x kBlockN queries per warp.
    float st[kBlockN / 8][4] = {};
    float dpt[kBlockN / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t ka[4], va[4];
      load_a_fragment<kD>(ka, k_tile, warp * 16, kk * 16, lane);
      load_a_fragment<kD>(va, v_tile, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t qb[4], db[4];
        load_bt_fragments<kD>(qb, q_s, np * 16, kk * 16, lane);
        load_bt_fragments<kD>(db, do_s, np * 16, kk * 16, lane);
        mma_16816<T>(st[2 * np], ka, qb[0], qb[1]);
        mma_16816<T>(st[2 * np + 1], ka, qb[2], qb[3]);
        mma_16816<T>(dpt[2 * np], va, db[0], db[1]);
        mma_16816<T>(dpt[2 * np + 1], va, db[2], db[3]);
      }
    }

    // P^T into st, dS^T into dpt. Columns are queries: their lse, delta and position.
    const bool need_mask = !work.full || m0 + kBlockN > sh.seq_q;
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t i = m0 + nt * 8 + 2 * t + e;  // query row
        const bool in_block = i < sh.seq_q;
        const int64_t stat = (b * sh.heads_q + h) * sh.seq_q + i;  // [b, h, i]
        const float lse = in_block ? p.lse[stat] * kLog2e : -INFINITY;
        const float delta = in_block ? p.delta[stat] : 0.0f;
        bool kept_a = lse != -INFINITY;
        bool kept_b = kept_a;
        if (need_mask && kept_a) {
          const int64_t qpos = position_at(p.q_pos, i);
          kept_a = attention_pair_kept(p.mask, qpos, kpos_a);
          kept_b = attention_pair_kept(p.mask, qpos, kpos_b);
        }
        const float pa = kept_a ? exp2f(st[nt][e] * p.scale_log2 - lse) : 0.0f;
        const float pb = kept_b ? exp2f(st[nt][2 + e] * p.scale_log2 - lse) : 0.0f;
        st[nt][e] = pa;
        st[nt][2 + e] = pb;
        dpt[nt][e] = pa * (dpt[nt][e] - delta);
        dpt[nt][2 + e] = pb * (dpt[nt][2 + e] - delta);
      }
    }

    // dV += P^T dO and dK += dS^T Q, P^T and dS^T packed to 16 bits from the accumulators.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t pa[4], dsa[4];
      pack_a_fragment<T>(pa, st[2 * kk], st[2 * kk + 1]);
      pack_a_fragment<T>(dsa, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < kD / 16; ++dt) {
        uint32_t dob[4], qb[4];
        load_b_fragments<kD>(dob, do_s, kk * 16, dt * 16, lane);
        load_b_fragments<kD>(qb, q_s, kk * 16, dt * 16, lane);
        mma_16816<T>(dv[2 * dt], pa, dob[0], dob[1]);
        mma_16816<T>(dv[2 * dt + 1], pa, dob[2], dob[3]);
        mma_16816<T>(dk[2 * dt], dsa, qb[0], qb[1]);
        mma_16816<T>(dk[2 * dt + 1], dsa, qb[2], qb[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
    item = next;
    work = next_work;
    buf ^= 1;
  }

  // dk[b, n0 + j, kvh, :] += scale * dK, dv[...] += dV
  const int64_t row_a = kv_first + static_cast<int64_t>(key_a) * kv_stride;
  const int64_t row_b = row_a + 8 * kv_stride;
#pragma unroll
  for (int dt = 0; dt < kD / 8; ++dt) {
    const int col = dt * 8 + 2 * t;
    if (key_a < keys_valid) {
      float2* k_dst = reinterpret_cast<float2*>(p.dk + row_a + col);
      float2* v_dst = reinterpret_cast<float2*>(p.dv + row_a + col);
      float2 kv = *k_dst;
      float2 vv = *v_dst;
      kv.x += p.softmax_scale * dk[dt][0];
      kv.y += p.softmax_scale * dk[dt][1];
      vv.x += dv[dt][0];
      vv.y += dv[dt][1];
      *k_dst = kv;
      *v_dst = vv;
    }
    if (key_b < keys_valid) {
      float2* k_dst = reinterpret_cast<float2*>(p.dk + row_b + col);
      float2* v_dst = reinterpret_cast<float2*>(p.dv + row_b + col);
      float2 kv = *k_dst;
      float2 vv = *v_dst;
      kv.x += p.softmax_scale * dk[dt][2];
      kv.y += p.softmax_scale * dk[dt][3];
      vv.x += dv[dt][2];
      vv.y += dv[dt][3];
      *k_dst = kv;
      *v_dst = vv;
    }
  }
}

}  // namespace

cudaError_t launch_block_backward_dkdv(const BackwardKernelParams& p, cudaStream_t stream) {
  return dispatch_dtype_head_dim(p.dtype, p.shape.head_dim, [&]<class T, int kD>() {
    using Tr = DkdvTraits<kD>;
    return launch_tiled(block_backward_dkdv_kernel<T, kD>, p, p.shape.seq_k, Tr::kBlockM,
                        p.shape.heads_kv, p.shape.batch, Tr::kThreads, Tr::kSmemBytes, stream);
  });
}

}  // namespace seqpar::cuda_attention
