// Fused attention backward on tensor cores, bf16 in / bf16 gradients, flash-attention-2 style and
// deterministic (no atomics). Letters: BH batch × heads, Tq queries, Tk keys, D head dim (32..128).
//   1. prep: per query row Di = rowsum(dout ⊙ o) and lse2 = lse·log2 e (+inf for fully masked rows, so
//      their recomputed P is 0), float32.
//   2. dk/dv: one block of 4 warps per (head, tile of 64 keys), 16 keys per warp; tiles of 64 queries
//      (q, dout, lse2, Di) stream through shared memory, double-buffered. A warp computes Sᵀ = K Qᵀ and
//      dPᵀ = V doutᵀ, Pᵀ = 2^(Sᵀ·scale·log2 e - lse2), dSᵀ = Pᵀ ⊙ (dPᵀ - Di), then dV += Pᵀ dout and
//      dK += dSᵀ Q with Pᵀ / dSᵀ rounded to bf16 straight from the registers; dK is scaled at the end.
//   3. dq: one block per (head, tile of 64 queries), key/value tiles streamed: S = Q Kᵀ, dP = dout Vᵀ,
//      dS as above, dQ += dS K, scaled at the end.
// P and dS are recomputed in both passes (7 matrix products instead of 5) to keep every gradient element
// owned by one thread. Tiles hidden by the mask are skipped. Checked against the float32 kernel in
// bench/gpu-attention.ts.
#include <cmath>

#include "cuda/attention-mma.cuh"
#include "dd2/cuda/attention.h"

namespace dd2 {
namespace {

using namespace attn;

// One warp per row: di = Σ dout·o (float), lse2 = lse·log2 e, or +inf (and di = 0) for masked rows.
__global__ void prep_kernel(float* di, float* lse2, const uint16_t* dout, const uint16_t* o, const float* lse,
                            int64_t rows, int D) {
    const int lane = threadIdx.x & 31;
    for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5; r < rows;
         r += ((int64_t)gridDim.x * blockDim.x) >> 5) {
        const uint32_t* a = reinterpret_cast<const uint32_t*>(dout + r * D);
        const uint32_t* b = reinterpret_cast<const uint32_t*>(o + r * D);
        float acc = 0.0f;
        for (int x = lane; x < D / 2; x += 32) {
            const float2 fa = unpack_bf16(a[x]), fb = unpack_bf16(b[x]);
            acc = fmaf(fa.x, fb.x, fmaf(fa.y, fb.y, acc));
        }
        for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
        if (lane == 0) {
            const float L = lse[r];
            di[r] = L == -INFINITY ? 0.0f : acc;
            lse2[r] = L == -INFINITY ? INFINITY : L * kLog2e;
        }
    }
}

#ifdef DD2_ATTN_MMA
// rows [r0, r0 + 64) of a (rows) float vector into dst[64]; past n: fill.
__device__ __forceinline__ void load_vec(float* dst, const float* src, int r0, int n, float fill) {
    if (threadIdx.x < kB) dst[threadIdx.x] = r0 + (int)threadIdx.x < n ? src[r0 + threadIdx.x] : fill;
}
#endif

// W warps: a block owns BK = 16·W keys. With 4 warps and D <= 64, registers are capped at 168 so that 3
// blocks fit on an SM (no spills at D = 64).
template <int D, int W>
__global__ void __launch_bounds__(32 * W, W == 4 && D <= 64 ? 3 : 1)
    dkdv_bf16_kernel(uint16_t* dk, uint16_t* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                     const uint16_t* v, const float* lse2, const float* di, const Params p) {
#ifdef DD2_ATTN_MMA
    constexpr int BK = 16 * W, kT = 32 * W;
    constexpr int kE = TileB<D>::kElems;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    uint16_t* Ks = reinterpret_cast<uint16_t*>(smem_raw);
    uint16_t* Vs = Ks + TileB<D, BK>::kElems;
    uint16_t* Qs = Vs + TileB<D, BK>::kElems;   // two buffers
    uint16_t* Os = Qs + 2 * kE;     // two buffers (dout)
    float* Ls = reinterpret_cast<float*>(Os + 2 * kE);   // two buffers of 64 lse2
    float* Ds = Ls + 2 * kB;                              // two buffers of 64 Di
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    // The key tiles of one head are neighbours (they share q and dout through L2).
    const int bh = (int)(blockIdx.x / p.nkt), kt = (int)(blockIdx.x % p.nkt);
    const int j0 = kt * BK;
    const int ja = j0 + warp * 16 + g, jb = ja + 8;   // this thread's two keys
    const int lka = p.lq && ja < p.Tk ? p.lk[ja] : 0, lkb = p.lq && jb < p.Tk ? p.lk[jb] : 0;
    const uint16_t* qb = q + (int64_t)bh * p.Tq * D;
    const uint16_t* ob = dout + (int64_t)bh * p.Tq * D;
    const float* lb = lse2 + (int64_t)bh * p.Tq;
    const float* db = di + (int64_t)bh * p.Tq;
    const float c = p.scale * kLog2e;

    int qt_begin = 0;   // with a causal mask, the first query tile whose last row reaches key j0
    if (!p.lq && p.causal) qt_begin = max(0, (j0 - p.off) / kB);
    auto next_tile = [&](int qt) {
        while (qt < p.nqt && tile_kind(p, qt, kt, kB, BK) == kSkip) ++qt;
        return qt;
    };
    int qt = next_tile(qt_begin);
    auto load = [&](int qt_, int b) {
        load_tile_async<D, kB, kT>(Qs + b * kE, qb, qt_ * kB, p.Tq);
        load_tile_async<D, kB, kT>(Os + b * kE, ob, qt_ * kB, p.Tq);
        load_vec(Ls + b * kB, lb, qt_ * kB, p.Tq, INFINITY);
        load_vec(Ds + b * kB, db, qt_ * kB, p.Tq, 0.0f);
    };
    load_tile_async<D, BK, kT>(Ks, k + (int64_t)bh * p.Tk * D, j0, p.Tk);
    load_tile_async<D, BK, kT>(Vs, v + (int64_t)bh * p.Tk * D, j0, p.Tk);
    if (qt < p.nqt) load(qt, 0);
    cp_async_commit();

    float gk[D / 8][4], gv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) gk[n][e] = gv[n][e] = 0.0f;
    int buf = 0;
    while (qt < p.nqt) {
        const int kind = tile_kind(p, qt, kt, kB, BK);
        const int nxt = next_tile(qt + 1);
        cp_async_wait<0>();
        __syncthreads();
        if (nxt < p.nqt) load(nxt, buf ^ 1);
        cp_async_commit();
        const uint16_t* Qt = Qs + buf * kE;
        const uint16_t* Ot = Os + buf * kE;
        const float* Lt = Ls + buf * kB;
        const float* Dt = Ds + buf * kB;

        float st[8][4], dpt[8][4];   // Sᵀ and dPᵀ: rows = this warp's 16 keys, columns = 64 queries
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) st[n][e] = dpt[n][e] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < D / 16; ++kc) {
            uint32_t ak[4], av[4];
            load_a<D>(ak, Ks, warp * 16, kc);
            load_a<D>(av, Vs, warp * 16, kc);
#pragma unroll
            for (int np = 0; np < 4; ++np) {
                uint32_t b[4];
                load_b_rows<D>(b, Qt, np * 16, kc);
                mma16816(st[2 * np], ak, b[0], b[1]);
                mma16816(st[2 * np + 1], ak, b[2], b[3]);
                load_b_rows<D>(b, Ot, np * 16, kc);
                mma16816(dpt[2 * np], av, b[0], b[1]);
                mma16816(dpt[2 * np + 1], av, b[2], b[3]);
            }
        }
        // Pᵀ into st, dSᵀ into dpt.
        const int i0 = qt * kB;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
            const int col = n * 8 + 2 * t;
            const float2 L = *reinterpret_cast<const float2*>(Lt + col);
            const float2 Dv = *reinterpret_cast<const float2*>(Dt + col);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float Le = e & 1 ? L.y : L.x, De = e & 1 ? Dv.y : Dv.x;
                float pe = ex2(st[n][e] * c - Le);
                if (kind == kPartial) {
                    const int i = i0 + col + (e & 1), j = e < 2 ? ja : jb;
                    const bool vis = i < p.Tq && (p.lq ? (e < 2 ? lka : lkb) <= __ldg(p.lq + i)
                                                       : !p.causal || j <= i + p.off);
                    pe = vis ? pe : 0.0f;
                }
                st[n][e] = pe;
                dpt[n][e] = pe * (dpt[n][e] - De);
            }
        }
        // dV += Pᵀ dout, dK += dSᵀ Q: queries are the k dimension, 16 per step.
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const uint32_t ap[4] = {pack_bf16(st[2 * kk][0], st[2 * kk][1]), pack_bf16(st[2 * kk][2], st[2 * kk][3]),
                                    pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                                    pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3])};
            const uint32_t as[4] = {pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]),
                                    pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]),
                                    pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                                    pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                uint32_t b[4];
                load_b_cols<D>(b, Ot, kk * 16, dp * 16);
                mma16816(gv[2 * dp], ap, b[0], b[1]);
                mma16816(gv[2 * dp + 1], ap, b[2], b[3]);
                load_b_cols<D>(b, Qt, kk * 16, dp * 16);
                mma16816(gk[2 * dp], as, b[0], b[1]);
                mma16816(gk[2 * dp + 1], as, b[2], b[3]);
            }
        }
        buf ^= 1;
        qt = nxt;
    }
    cp_async_wait<0>();
    const int keys[2] = {ja, jb};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if (keys[h] >= p.Tk) continue;
        const int64_t row = (int64_t)bh * p.Tk + keys[h];
        uint32_t* dkrow = reinterpret_cast<uint32_t*>(dk + row * D);
        uint32_t* dvrow = reinterpret_cast<uint32_t*>(dv + row * D);
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            dkrow[n * 4 + t] = pack_bf16(gk[n][2 * h] * p.scale, gk[n][2 * h + 1] * p.scale);
            dvrow[n * 4 + t] = pack_bf16(gv[n][2 * h], gv[n][2 * h + 1]);
        }
    }
#endif
}

// W warps: a block owns BQ = 16·W queries.
template <int D, int W>
__global__ void __launch_bounds__(32 * W) dq_bf16_kernel(uint16_t* dq, const uint16_t* dout, const uint16_t* q,
                                                         const uint16_t* k, const uint16_t* v, const float* lse2,
                                                         const float* di, const Params p) {
#ifdef DD2_ATTN_MMA
    constexpr int BQ = 16 * W, kT = 32 * W;
    constexpr int kE = TileB<D>::kElems;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    uint16_t* Qs = reinterpret_cast<uint16_t*>(smem_raw);
    uint16_t* Os = Qs + TileB<D, BQ>::kElems;
    uint16_t* Ks = Os + TileB<D, BQ>::kElems;   // two buffers
    uint16_t* Vs = Ks + 2 * kE;   // two buffers
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int bh = (int)(blockIdx.x / p.nqt), qt = p.nqt - 1 - (int)(blockIdx.x % p.nqt);
    const int i0 = qt * BQ;
    const int ia = i0 + warp * 16 + g, ib = ia + 8;
    const int lqa = p.lq && ia < p.Tq ? p.lq[ia] : 0, lqb = p.lq && ib < p.Tq ? p.lq[ib] : 0;
    const int64_t rowa = (int64_t)bh * p.Tq + ia, rowb = rowa + 8;
    const float La = ia < p.Tq ? lse2[rowa] : INFINITY, Lb = ib < p.Tq ? lse2[rowb] : INFINITY;
    const float Da = ia < p.Tq ? di[rowa] : 0.0f, Db = ib < p.Tq ? di[rowb] : 0.0f;
    const uint16_t* kb = k + (int64_t)bh * p.Tk * D;
    const uint16_t* vb = v + (int64_t)bh * p.Tk * D;
    const float c = p.scale * kLog2e;

    int kt_end = p.nkt;
    if (!p.lq && p.causal) {
        const int jl = min(p.Tq, i0 + BQ) - 1 + p.off;
        kt_end = jl < 0 ? 0 : min(p.nkt, jl / kB + 1);
    }
    auto next_tile = [&](int kt) {
        while (kt < kt_end && tile_kind(p, qt, kt, BQ, kB) == kSkip) ++kt;
        return kt;
    };
    int kt = next_tile(0);
    load_tile_async<D, BQ, kT>(Qs, q + (int64_t)bh * p.Tq * D, i0, p.Tq);
    load_tile_async<D, BQ, kT>(Os, dout + (int64_t)bh * p.Tq * D, i0, p.Tq);
    if (kt < kt_end) {
        load_tile_async<D, kB, kT>(Ks, kb, kt * kB, p.Tk);
        load_tile_async<D, kB, kT>(Vs, vb, kt * kB, p.Tk);
    }
    cp_async_commit();

    uint32_t qf[D / 16][4], of[D / 16][4];
    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    int buf = 0;
    bool first = true;
    while (kt < kt_end) {
        const int kind = tile_kind(p, qt, kt, BQ, kB);
        const int nxt = next_tile(kt + 1);
        cp_async_wait<0>();
        __syncthreads();
        if (first) {
#pragma unroll
            for (int kc = 0; kc < D / 16; ++kc) {
                load_a<D>(qf[kc], Qs, warp * 16, kc);
                load_a<D>(of[kc], Os, warp * 16, kc);
            }
            first = false;
        }
        if (nxt < kt_end) {
            load_tile_async<D, kB, kT>(Ks + (buf ^ 1) * kE, kb, nxt * kB, p.Tk);
            load_tile_async<D, kB, kT>(Vs + (buf ^ 1) * kE, vb, nxt * kB, p.Tk);
        }
        cp_async_commit();
        const uint16_t* Kt = Ks + buf * kE;
        const uint16_t* Vt = Vs + buf * kE;

        float s[8][4], dp[8][4];
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < D / 16; ++kc) {
#pragma unroll
            for (int np = 0; np < 4; ++np) {
                uint32_t b[4];
                load_b_rows<D>(b, Kt, np * 16, kc);
                mma16816(s[2 * np], qf[kc], b[0], b[1]);
                mma16816(s[2 * np + 1], qf[kc], b[2], b[3]);
                load_b_rows<D>(b, Vt, np * 16, kc);
                mma16816(dp[2 * np], of[kc], b[0], b[1]);
                mma16816(dp[2 * np + 1], of[kc], b[2], b[3]);
            }
        }
        const int j0 = kt * kB;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float pe = ex2(s[n][e] * c - (e < 2 ? La : Lb));
                if (kind == kPartial) {
                    const int j = j0 + n * 8 + 2 * t + (e & 1), i = e < 2 ? ia : ib;
                    const bool vis = j < p.Tk && (p.lq ? __ldg(p.lk + j) <= (e < 2 ? lqa : lqb)
                                                       : !p.causal || j <= i + p.off);
                    pe = vis ? pe : 0.0f;
                }
                s[n][e] = pe * (dp[n][e] - (e < 2 ? Da : Db));   // dS
            }
        }
        // dQ += dS K: keys are the k dimension; K tile rows are keys.
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                   pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < D / 16; ++d2) {
                uint32_t b[4];
                load_b_cols<D>(b, Kt, kk * 16, d2 * 16);
                mma16816(acc[2 * d2], a, b[0], b[1]);
                mma16816(acc[2 * d2 + 1], a, b[2], b[3]);
            }
        }
        buf ^= 1;
        kt = nxt;
    }
    cp_async_wait<0>();
    const int rows[2] = {ia, ib};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if (rows[h] >= p.Tq) continue;
        uint32_t* dqrow = reinterpret_cast<uint32_t*>(dq + ((int64_t)bh * p.Tq + rows[h]) * D);
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            dqrow[n * 4 + t] = pack_bf16(acc[n][2 * h] * p.scale, acc[n][2 * h + 1] * p.scale);
    }
#endif
}

}  // namespace

void attention_backward_bf16_cuda(uint16_t* dq, uint16_t* dk, uint16_t* dv, const uint16_t* dout,
                                  const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* o,
                                  const float* lse, const AttentionShape& s) {
    const char* op = "attention_backward_bf16";
    with_head_dim(s.D, op, [&](auto dc) {
        constexpr int D = decltype(dc)::value;
        const int64_t nq = s.BH * s.Tq * D, nk = s.BH * s.Tk * D;
        if (s.Tq == 0 || s.Tk == 0) {   // no visible pair: gradients are 0
            if (nq) cuda::memset_zero(dq, 2 * nq);
            if (nk) cuda::memset_zero(dk, 2 * nk);
            if (nk) cuda::memset_zero(dv, 2 * nk);
            return;
        }
        if (s.BH == 0) return;
        require_sm80(op);
        const int64_t rows = s.BH * s.Tq;
        Scratch tmp(sizeof(float) * 2 * rows);
        float* di = tmp.as<float>();
        float* lse2 = di + rows;
        prep_kernel<<<cuda::blocks_for(rows * 32, 256), 256, 0, cuda::stream()>>>(di, lse2, dout, o, lse, rows, D);
        cuda::check_launch(op);
        constexpr int W = 4;        // 8 warps (128 rows per block) measured slower on an H100
        constexpr int R = 16 * W;   // rows a block owns
        Scratch ranges_kv, ranges_q;
        const Params pkv = make_params(s, kB, R, ranges_kv, op);   // query tiles of 64, key tiles of R
        const Params pq = make_params(s, R, kB, ranges_q, op);     // query tiles of R, key tiles of 64
        const int64_t bkv = (int64_t)pkv.BH * pkv.nkt, bq = (int64_t)pq.BH * pq.nqt;
        DD2_CHECK_RANGE(bkv <= INT32_MAX && bq <= INT32_MAX, op, ": too many blocks");
        const size_t smem_kv = 2 * TileB<D, R>::kBytes + 4 * TileB<D>::kBytes + 4 * kB * sizeof(float);
        allow_smem(dkdv_bf16_kernel<D, W>, smem_kv, op);
        dkdv_bf16_kernel<D, W><<<(unsigned)bkv, 32 * W, smem_kv, cuda::stream()>>>(dk, dv, dout, q, k, v, lse2, di,
                                                                                   pkv);
        cuda::check_launch(op);
        const size_t smem_q = 2 * TileB<D, R>::kBytes + 4 * TileB<D>::kBytes;
        allow_smem(dq_bf16_kernel<D, W>, smem_q, op);
        dq_bf16_kernel<D, W><<<(unsigned)bq, 32 * W, smem_q, cuda::stream()>>>(dq, dout, q, k, v, lse2, di, pq);
        cuda::check_launch(op);
    });
}

}  // namespace dd2
