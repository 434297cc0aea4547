// Fused attention forward on tensor cores, bf16 in / bf16 out (lse float32), flash-attention-2 style.
// Letters: BH batch × heads, Tq queries, Tk keys, D head dim (32, 64, 96 or 128). One block of 4 warps
// per (head, tile of 64 queries), 16 query rows per warp; tiles of 64 keys and values stream through
// shared memory with cp.async, double-buffered (the next tile loads while this one is used). Per tile a
// warp computes S = Q Kᵀ (mma.sync, float32), masks it when the tile is only partly visible, updates the
// online softmax in base 2 (running max m, per-thread partial sums l, rescaled accumulator) and adds P V
// with P rounded to bf16 straight from the score registers. Tiles hidden by the mask are never loaded.
// Fully masked rows give o = 0 and lse = -inf. Benchmarked by bench/gpu-attention.ts (checked there
// against the float32 kernel).
#include <cmath>

#include "cuda/attention-mma.cuh"
#include "dd2/cuda/attention.h"

namespace dd2 {
namespace {

using namespace attn;

// One key tile for this warp's 16 query rows (this thread's rows ia, ib): S = Q Kᵀ, mask, online softmax
// update of m, l and acc, acc += P V.
template <int D>
__device__ __forceinline__ void fwd_tile(float (&acc)[D / 8][4], float (&m)[2], float (&l)[2],
                                         const uint32_t (&qf)[D / 16][4], const uint16_t* Kt, const uint16_t* Vt,
                                         const Params& p, int kind, int j0, int ia, int ib, int lqa, int lqb,
                                         float c) {
    const int t = threadIdx.x & 3;
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
#pragma unroll
        for (int np = 0; np < 4; ++np) {
            uint32_t b[4];
            load_b_rows<D>(b, Kt, np * 16, kc);
            mma16816(s[2 * np], qf[kc], b[0], b[1]);
            mma16816(s[2 * np + 1], qf[kc], b[2], b[3]);
        }
    }
    // Scores in base-2 units; hidden keys (and keys past Tk) to -inf on partial tiles.
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            float x = s[n][e] * c;
            if (kind == kPartial) {
                const int j = j0 + n * 8 + 2 * t + (e & 1), i = e < 2 ? ia : ib;
                const bool vis = j < p.Tk && (p.lq ? __ldg(p.lk + j) <= (e < 2 ? lqa : lqb)
                                                   : !p.causal || j <= i + p.off);
                x = vis ? x : -INFINITY;
            }
            s[n][e] = x;
        }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < 8; ++n) {
        mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
    }
    float alpha[2], mu[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        mu[h] = mx[h] == -INFINITY ? 0.0f : mx[h];   // a row with nothing visible yet keeps p = 0
        alpha[h] = ex2(m[h] - mu[h]);                 // 0 while m = -inf
        m[h] = mx[h];
    }
    float ls[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < 8; ++n) {
        s[n][0] = ex2(s[n][0] - mu[0]);
        s[n][1] = ex2(s[n][1] - mu[0]);
        s[n][2] = ex2(s[n][2] - mu[1]);
        s[n][3] = ex2(s[n][3] - mu[1]);
        ls[0] += s[n][0] + s[n][1];
        ls[1] += s[n][2] + s[n][3];
    }
    l[0] = l[0] * alpha[0] + ls[0];
    l[1] = l[1] * alpha[1] + ls[1];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
        acc[n][0] *= alpha[0];
        acc[n][1] *= alpha[0];
        acc[n][2] *= alpha[1];
        acc[n][3] *= alpha[1];
    }
    // O += P V: keys are the k dimension, 16 per step; V tile rows are keys.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                               pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                               pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t b[4];
            load_b_cols<D>(b, Vt, kk * 16, dp * 16);
            mma16816(acc[2 * dp], a, b[0], b[1]);
            mma16816(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

// One block of W warps per (head, query tile of BQ = 16·W rows); the query tiles of one head are
// neighbours in the grid (they share k and v through L2), the longest first. The next key tile is copied
// while the current one is used. (A persistent variant that also prefetched across query tiles measured
// no faster on an H100, though it spilled a few registers.)
template <int D, int W>
__global__ void __launch_bounds__(32 * W) fwd_bf16_kernel(uint16_t* o, float* lse, const uint16_t* q,
                                                          const uint16_t* k, const uint16_t* v, const Params p) {
#ifdef DD2_ATTN_MMA
    constexpr int BQ = 16 * W, kT = 32 * W;
    constexpr int kE = TileB<D>::kElems;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    uint16_t* Qs = reinterpret_cast<uint16_t*>(smem_raw);
    uint16_t* Ks = Qs + TileB<D, BQ>::kElems;   // two buffers
    uint16_t* Vs = Ks + 2 * kE;                  // two buffers
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int bh = (int)(blockIdx.x / p.nqt), qt = p.nqt - 1 - (int)(blockIdx.x % p.nqt);
    const int i0 = qt * BQ;
    const int ia = i0 + warp * 16 + g, ib = ia + 8;   // this thread's two rows
    const int lqa = p.lq && ia < p.Tq ? p.lq[ia] : 0, lqb = p.lq && ib < p.Tq ? p.lq[ib] : 0;
    const uint16_t* qb = q + (int64_t)bh * p.Tq * D;
    const uint16_t* kb = k + (int64_t)bh * p.Tk * D;
    const uint16_t* vb = v + (int64_t)bh * p.Tk * D;
    const float c = p.scale * kLog2e;

    // Key tiles [0, kt_end); with a causal mask none past the last row's diagonal.
    int kt_end = p.nkt;
    if (!p.lq && p.causal) {
        const int jl = min(p.Tq, i0 + BQ) - 1 + p.off;   // last key any row of the tile sees
        kt_end = jl < 0 ? 0 : min(p.nkt, jl / kB + 1);
    }
    auto next_tile = [&](int kt) {
        while (kt < kt_end && tile_kind(p, qt, kt, BQ, kB) == kSkip) ++kt;
        return kt;
    };

    int kt = next_tile(0);
    load_tile_async<D, BQ, kT>(Qs, qb, i0, p.Tq);
    if (kt < kt_end) {
        load_tile_async<D, kB, kT>(Ks, kb, kt * kB, p.Tk);
        load_tile_async<D, kB, kT>(Vs, vb, kt * kB, p.Tk);
    }
    cp_async_commit();

    uint32_t qf[D / 16][4];
    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    int buf = 0;
    bool first = true;
    while (kt < kt_end) {
        const int kind = tile_kind(p, qt, kt, BQ, kB);
        const int nxt = next_tile(kt + 1);
        cp_async_wait<0>();
        __syncthreads();   // this tile has landed; every warp is done with the other buffer
        if (first) {
#pragma unroll
            for (int kc = 0; kc < D / 16; ++kc) load_a<D>(qf[kc], Qs, warp * 16, kc);
            first = false;
        }
        if (nxt < kt_end) {
            load_tile_async<D, kB, kT>(Ks + (buf ^ 1) * kE, kb, nxt * kB, p.Tk);
            load_tile_async<D, kB, kT>(Vs + (buf ^ 1) * kE, vb, nxt * kB, p.Tk);
        }
        cp_async_commit();
        fwd_tile<D>(acc, m, l, qf, Ks + buf * kE, Vs + buf * kE, p, kind, kt * kB, ia, ib, lqa, lqb, c);
        buf ^= 1;
        kt = nxt;
    }
    cp_async_wait<0>();

    float inv[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
        inv[h] = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
    }
    const int rows[2] = {ia, ib};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if (rows[h] >= p.Tq) continue;
        const int64_t row = (int64_t)bh * p.Tq + rows[h];
        uint32_t* orow = reinterpret_cast<uint32_t*>(o + row * D);
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            orow[n * 4 + t] = pack_bf16(acc[n][2 * h] * inv[h], acc[n][2 * h + 1] * inv[h]);
        if (t == 0) lse[row] = l[h] > 0.0f ? (m[h] + log2f(l[h])) * kLn2 : -INFINITY;
    }
#endif
}

}  // namespace

void attention_forward_bf16_cuda(uint16_t* o, float* lse, const uint16_t* q, const uint16_t* k,
                                 const uint16_t* v, const AttentionShape& s) {
    const char* op = "attention_forward_bf16";
    constexpr int W = 4;   // 64 query rows per block (8 warps / 128 rows measured slower on an H100)
    with_head_dim(s.D, op, [&](auto dc) {
        constexpr int D = decltype(dc)::value;
        if (s.BH == 0 || s.Tq == 0) return;
        require_sm80(op);
        Scratch ranges;
        const Params p = make_params(s, 16 * W, kB, ranges, op);
        const int64_t blocks = (int64_t)p.BH * p.nqt;
        DD2_CHECK_RANGE(blocks <= INT32_MAX, op, ": too many blocks (", blocks, ")");
        const size_t smem = TileB<D, 16 * W>::kBytes + 4 * TileB<D>::kBytes;
        allow_smem(fwd_bf16_kernel<D, W>, smem, op);
        fwd_bf16_kernel<D, W><<<(unsigned)blocks, 32 * W, smem, cuda::stream()>>>(o, lse, q, k, v, p);
        cuda::check_launch(op);
    });
}

}  // namespace dd2
