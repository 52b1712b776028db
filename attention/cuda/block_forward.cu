// block_forward_kernel: FlashAttention-2 style forward of one (query block, key block) pair on
// tensor cores. A CTA owns kBlockM = 64 query rows of one query head (16 rows per warp, kept in
// registers as mma A fragments) and walks the key tiles of its kv head (query head h reads kv
// head h / group: K/V are never replicated), K/V tiles double-buffered in shared memory through
// cp.async. Online softmax in base 2 on the fp32 accumulators; P goes from the S accumulators
// straight into the P V product. Tiles the mask drops entirely are skipped, tiles it keeps
// entirely skip the per-element test (attention/block_params.hpp, the CPU kernels' rule).
// Output: normalised O (fp32) and LSE (natural log), written, or merged into the running
// (out, lse) with the guarded -inf rule of cpu_tiles::merge_row.
#include <cmath>

#include "attention/cuda/kernel_params.hpp"
#include "attention/cuda/mma_tiles.cuh"

namespace seqpar::cuda_attention {
namespace {

template <int kD>
struct ForwardTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * kWarpSize;
  static constexpr int kBlockM = 16 * kWarps;               // query rows per CTA
  static constexpr int kBlockN = 64;                        // keys per tile
  static constexpr int kTileM = kBlockM * kSmemStride<kD>;  // elements of the Q tile
  static constexpr int kTileN = kBlockN * kSmemStride<kD>;  // elements of one K or V tile
  // Q, then K[2], then V[2] (16-bit elements).
  static constexpr int kSmemBytes = (kTileM + 4 * kTileN) * 2;
};

// One accumulator row (rows g or g + 8 of the warp's 16): normalise and write, or merge into
// the running (out, lse). `half` picks c0/c1 (row g) or c2/c3 (row g + 8) of each C tile.
template <int kD>
__device__ __forceinline__ void store_output_row(const ForwardKernelParams& p,
                                                 const float (&o)[kD / 8][4], int half, bool valid,
                                                 int64_t out_offset, int64_t lse_offset,
                                                 float row_max, float row_sum, int t) {
  const bool kept_any = row_sum > 0.0f;
  const float row_lse = kept_any ? row_max * kLn2 + logf(row_sum) : -INFINITY;
  float c_new = kept_any ? 1.0f / row_sum : 0.0f;  // on the unnormalised accumulator
  float c_old = 0.0f;
  float new_lse = row_lse;
  bool write = valid;
  bool blend = false;
  if (p.accumulate) {
    const float old_lse = valid ? p.lse[lse_offset] : -INFINITY;
    __syncwarp();  // every lane of the quad has read the old lse before lane t == 0 writes it
    if (row_lse == -INFINITY) {
      write = false;  // merging a fully masked row changes nothing
    } else if (old_lse != -INFINITY) {
      const float m = fmaxf(old_lse, row_lse);
      const float w_old = expf(old_lse - m);
      const float w_new = expf(row_lse - m);
      const float sum = w_old + w_new;
      c_old = w_old / sum;
      c_new *= w_new / sum;
      new_lse = m + logf(sum);
      blend = true;
    }
  }
  if (!write) return;
  float* out = p.out + out_offset;
#pragma unroll
  for (int dt = 0; dt < kD / 8; ++dt) {
    float2* dst = reinterpret_cast<float2*>(out + dt * 8 + 2 * t);
    float2 v = make_float2(o[dt][2 * half] * c_new, o[dt][2 * half + 1] * c_new);
    if (blend) {
      const float2 prev = *dst;
      v.x += c_old * prev.x;
      v.y += c_old * prev.y;
    }
    *dst = v;
  }
  if (t == 0) p.lse[lse_offset] = new_lse;
}

template <class T, int kD>
__global__ void __launch_bounds__(ForwardTraits<kD>::kThreads)
    block_forward_kernel(const __grid_constant__ ForwardKernelParams p) {
  using Tr = ForwardTraits<kD>;
  constexpr int kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN;
  SEQPAR_DYNAMIC_SMEM(T, q_tile);         // (kBlockM, kD) padded
  T* k_tiles = q_tile + Tr::kTileM;       // [2] (kBlockN, kD) padded
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

  // q[b, m0 + r, h, :] at q_g + r * q_stride; k[b, j, kvh, :] at k_g + j * kv_stride (v alike)
  const int64_t q_stride = sh.heads_q * kD;
  const int64_t kv_stride = sh.heads_kv * kD;
  const T* q_g = static_cast<const T*>(p.q) + ((b * sh.seq_q + m0) * sh.heads_q + h) * kD;
  const T* k_g = static_cast<const T*>(p.k) + (b * sh.seq_k * sh.heads_kv + kvh) * kD;
  const T* v_g = static_cast<const T*>(p.v) + (b * sh.seq_k * sh.heads_kv + kvh) * kD;

  // This thread's two accumulator rows (local to the CTA) and their positions.
  const int row_a = warp * 16 + g;
  const int row_b = row_a + 8;
  const int64_t qpos_a = row_a < rows_valid ? position_at(p.q_pos, m0 + row_a) : 0;
  const int64_t qpos_b = row_b < rows_valid ? position_at(p.q_pos, m0 + row_b) : 0;
  const PositionRange q_range = warp_position_range(p.q_pos, m0, m0 + rows_valid, lane);

  const int n_tiles = static_cast<int>((sh.seq_k + kBlockN - 1) / kBlockN);
  // First tile >= from whose pairs the mask does not drop entirely (n_tiles: none).
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

  load_tile_async<kBlockM, kD, Tr::kThreads>(q_tile, q_g, q_stride, rows_valid, tid);
  cp_async_commit();
  TileWork work;
  int tile = next_tile(0, &work);
  if (tile < n_tiles) {
    load_kv(tile, 0);
    cp_async_wait<1>();  // Q has landed; the first K/V tile may still be in flight
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
  uint32_t q_frag[kD / 16][4];  // this warp's 16 query rows as A fragments
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk)
    load_a_fragment<kD>(q_frag[kk], q_tile, warp * 16, kk * 16, lane);

  float o[kD / 8][4] = {};  // unnormalised output: rows (g, g + 8) x columns of 8 d-tiles
  float max_a = -INFINITY, max_b = -INFINITY;  // running row max (base-2 scaled scores)
  float sum_a = 0.0f, sum_b = 0.0f;            // this lane's part of the running row sum
  int buf = 0;
  while (tile < n_tiles) {
    TileWork next_work;
    const int next = next_tile(tile + 1, &next_work);
    if (next < n_tiles) {
      load_kv(next, buf ^ 1);  // the buffer the previous iteration finished with
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* k_s = k_tiles + buf * Tr::kTileN;
    const T* v_s = v_tiles + buf * Tr::kTileN;
    const int64_t k0 = static_cast<int64_t>(tile) * kBlockN;

    // S = Q K^T: 16 rows x kBlockN keys per warp.
    float s[kBlockN / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t kb[4];
        load_bt_fragments<kD>(kb, k_s, np * 16, kk * 16, lane);
        mma_16816<T>(s[2 * np], q_frag[kk], kb[0], kb[1]);
        mma_16816<T>(s[2 * np + 1], q_frag[kk], kb[2], kb[3]);
      }
    }

    // Scale to base 2, then mask: dropped pairs and keys past the block end become -inf.
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] *= p.scale_log2;
    }
    if (!work.full || k0 + kBlockN > sh.seq_k) {
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t col = k0 + nt * 8 + 2 * t + e;
          const bool in_block = col < sh.seq_k;
          const int64_t kpos = in_block ? position_at(p.k_pos, col) : 0;
          if (!in_block || !attention_pair_kept(p.mask, qpos_a, kpos)) s[nt][e] = -INFINITY;
          if (!in_block || !attention_pair_kept(p.mask, qpos_b, kpos)) s[nt][2 + e] = -INFINITY;
        }
      }
    }

    // Online softmax. A row with no kept key so far keeps max -inf; its shift is 0, so every
    // exp2 below is exp2(-inf) = 0 and no -inf - -inf is formed.
    float tile_max_a = max_a, tile_max_b = max_b;
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
      tile_max_a = fmaxf(tile_max_a, fmaxf(s[nt][0], s[nt][1]));
      tile_max_b = fmaxf(tile_max_b, fmaxf(s[nt][2], s[nt][3]));
    }
    tile_max_a = quad_max(tile_max_a);
    tile_max_b = quad_max(tile_max_b);
    const float shift_a = tile_max_a == -INFINITY ? 0.0f : tile_max_a;
    const float shift_b = tile_max_b == -INFINITY ? 0.0f : tile_max_b;
    const float alpha_a = exp2f(max_a - shift_a);
    const float alpha_b = exp2f(max_b - shift_b);
    max_a = tile_max_a;
    max_b = tile_max_b;
    float add_a = 0.0f, add_b = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - shift_a);
      s[nt][1] = exp2f(s[nt][1] - shift_a);
      s[nt][2] = exp2f(s[nt][2] - shift_b);
      s[nt][3] = exp2f(s[nt][3] - shift_b);
      add_a += s[nt][0] + s[nt][1];
      add_b += s[nt][2] + s[nt][3];
    }
    sum_a = sum_a * alpha_a + add_a;
    sum_b = sum_b * alpha_b + add_b;
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt) {
      o[dt][0] *= alpha_a;
      o[dt][1] *= alpha_a;
      o[dt][2] *= alpha_b;
      o[dt][3] *= alpha_b;
    }

    // O += P V, P packed to 16 bits from the S accumulators.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t pa[4];
      pack_a_fragment<T>(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < kD / 16; ++dp) {
        uint32_t vb[4];
        load_b_fragments<kD>(vb, v_s, kk * 16, dp * 16, lane);
        mma_16816<T>(o[2 * dp], pa, vb[0], vb[1]);
        mma_16816<T>(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
    tile = next;
    work = next_work;
    buf ^= 1;
  }

  sum_a = quad_sum(sum_a);
  sum_b = quad_sum(sum_b);
  // out[b, m0 + r, h, :] and lse[b, h, m0 + r]
  const int64_t out_a = ((b * sh.seq_q + m0 + row_a) * sh.heads_q + h) * kD;
  const int64_t out_b = out_a + 8 * sh.heads_q * kD;
  const int64_t lse_a = (b * sh.heads_q + h) * sh.seq_q + m0 + row_a;
  store_output_row<kD>(p, o, 0, row_a < rows_valid, out_a, lse_a, max_a, sum_a, t);
  store_output_row<kD>(p, o, 1, row_b < rows_valid, out_b, lse_a + 8, max_b, sum_b, t);
}

}  // namespace

cudaError_t launch_block_forward(const ForwardKernelParams& p, cudaStream_t stream) {
  return dispatch_dtype_head_dim(p.dtype, p.shape.head_dim, [&]<class T, int kD>() {
    using Tr = ForwardTraits<kD>;
    return launch_tiled(block_forward_kernel<T, kD>, p, p.shape.seq_q, Tr::kBlockM, p.shape.heads_q,
                        p.shape.batch, Tr::kThreads, Tr::kSmemBytes, stream);
  });
}

}  // namespace seqpar::cuda_attention
