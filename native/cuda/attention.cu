// Fused attention on the GPU, float32 (CUDA cores), flash-attention-2 structure. Letters: BH batch ×
// heads, Tq queries, Tk keys, D head dim. A block of 128 threads owns 32 rows (queries in the forward and
// dq pass, keys in the dk/dv pass); each row is shared by a group of 4 adjacent threads, thread g of the
// group holding dims g, g+4, g+8, ... (kE per thread, rows padded to kDp = 4·kE with zeros). Dot products
// are 4 partial sums joined by two xor-shuffles (all 4 threads get identical bits). The other side
// streams through shared memory in tiles of 32 rows; tiles hidden by the mask are skipped. The blocks of
// one head are neighbours in the grid, so the tiles they all read come from L2. Forward: online
// softmax (running max m, sum l), lse = m + log l. Backward: Di = rowsum(dout ⊙ o) (double), then a pass
// over key tiles (dk, dv) and one over query tiles (dq), both recomputing P = exp(s - lse): deterministic.
// Float arithmetic as native/cpu/attention.cpp (expf instead of its polynomial). Tested by
// test/kernels/attention.test.ts with DD2_DEFAULT_DEVICE=cuda.
#include <cmath>
#include <type_traits>

#include "cuda/attention-common.cuh"
#include "dd2/cuda/attention.h"

namespace dd2 {
namespace {

using attn::Params;
constexpr int kRows = 32;      // rows per block (4 threads each)
constexpr int kTile = 32;      // rows per streamed tile
constexpr int kThreads = 128;

__device__ __forceinline__ float group_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}

// dst[c·kDp + d] = src row (r0 + c), dim d, times mul, for c < 32; zero past n rows and past D.
template <int kDp>
__device__ __forceinline__ void load_tile(float* dst, const float* src, int r0, int n, int D, float mul) {
    for (int x = threadIdx.x; x < kTile * kDp; x += kThreads) {
        const int c = x / kDp, d = x - c * kDp;
        dst[x] = c < n && d < D ? src[(int64_t)(r0 + c) * D + d] * mul : 0.0f;
    }
}

template <int kE>
__global__ void __launch_bounds__(kThreads) fwd_kernel(float* o, float* lse, const float* q, const float* k,
                                                       const float* v, const Params p) {
    constexpr int kDp = 4 * kE;
    extern __shared__ float sm[];
    float* Ks = sm;
    float* Vs = Ks + kTile * kDp;
    int* Lk = reinterpret_cast<int*>(Vs + kTile * kDp);
    const int g = threadIdx.x & 3, r = threadIdx.x >> 2;
    const int bh = (int)(blockIdx.x / p.nqt), qt = p.nqt - 1 - (int)(blockIdx.x % p.nqt);
    const int i = qt * kRows + r, D = p.D;
    const bool row_ok = i < p.Tq;
    const int lqi = p.lq && row_ok ? p.lq[i] : 0;
    const float* qrow = q + ((int64_t)bh * p.Tq + i) * D;
    float qr[kE], acc[kE];
#pragma unroll
    for (int m = 0; m < kE; ++m) {
        const int d = g + 4 * m;
        qr[m] = row_ok && d < D ? qrow[d] * p.scale : 0.0f;
        acc[m] = 0.0f;
    }
    float mrow = -INFINITY, l = 0.0f;
    const float* kb = k + (int64_t)bh * p.Tk * D;
    const float* vb = v + (int64_t)bh * p.Tk * D;
    for (int kt = 0; kt < p.nkt; ++kt) {
        const int kind = attn::tile_kind(p, qt, kt, kRows, kTile);
        if (kind == attn::kSkip) continue;
        const int j0 = kt * kTile, nk = min(kTile, p.Tk - j0);
        __syncthreads();   // the previous tile's readers are done
        load_tile<kDp>(Ks, kb, j0, nk, D, 1.0f);
        load_tile<kDp>(Vs, vb, j0, nk, D, 1.0f);
        if (p.lq && threadIdx.x < kTile) Lk[threadIdx.x] = threadIdx.x < nk ? p.lk[j0 + threadIdx.x] : 0;
        __syncthreads();
        float s[kTile];
#pragma unroll
        for (int c = 0; c < kTile; ++c) {
            float part = 0.0f;
#pragma unroll
            for (int m = 0; m < kE; ++m) part = fmaf(qr[m], Ks[c * kDp + g + 4 * m], part);
            s[c] = group_sum(part);
        }
        if (kind == attn::kPartial) {
#pragma unroll
            for (int c = 0; c < kTile; ++c) {
                const int j = j0 + c;
                const bool vis = c < nk && (p.lq ? Lk[c] <= lqi : !p.causal || j <= i + p.off);
                s[c] = vis ? s[c] : -INFINITY;
            }
        }
        float tmax = -INFINITY;
#pragma unroll
        for (int c = 0; c < kTile; ++c) tmax = fmaxf(tmax, s[c]);
        const float mnew = fmaxf(mrow, tmax);
        if (mnew == -INFINITY) continue;   // no visible key for this row yet (no shuffles below)
        const float alpha = expf(mrow - mnew);   // 0 on the row's first visible tile
        float sum = 0.0f;
#pragma unroll
        for (int c = 0; c < kTile; ++c) {
            s[c] = expf(s[c] - mnew);
            sum += s[c];
        }
        l = l * alpha + sum;
        mrow = mnew;
#pragma unroll
        for (int m = 0; m < kE; ++m) acc[m] *= alpha;
#pragma unroll
        for (int c = 0; c < kTile; ++c) {
#pragma unroll
            for (int m = 0; m < kE; ++m) acc[m] = fmaf(s[c], Vs[c * kDp + g + 4 * m], acc[m]);
        }
    }
    if (!row_ok) return;
    const bool any = l > 0.0f;   // l >= 1 once a key was visible
    float* orow = o + ((int64_t)bh * p.Tq + i) * D;
#pragma unroll
    for (int m = 0; m < kE; ++m) {
        const int d = g + 4 * m;
        if (d < D) orow[d] = any ? acc[m] / l : 0.0f;
    }
    if (g == 0) lse[(int64_t)bh * p.Tq + i] = any ? mrow + logf(l) : -INFINITY;
}

// di[r] = Σ_d dout[r, d] · o[r, d] in double (0 for fully masked rows); one warp per row.
__global__ void rowdot_kernel(float* di, const float* dout, const float* o, const float* lse, int64_t rows,
                              int D) {
    const int lane = threadIdx.x & 31;
    for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5; r < rows;
         r += ((int64_t)gridDim.x * blockDim.x) >> 5) {
        double acc = 0.0;
        for (int d = lane; d < D; d += 32) acc += (double)dout[r * D + d] * o[r * D + d];
        for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
        if (lane == 0) di[r] = lse[r] == -INFINITY ? 0.0f : (float)acc;
    }
}

// dk, dv for key tile kt of head bh: rows are keys; query tiles stream through shared memory.
template <int kE>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(float* dk, float* dv, const float* dout, const float* q,
                                                        const float* k, const float* v, const float* lse,
                                                        const float* di, const Params p) {
    constexpr int kDp = 4 * kE;
    extern __shared__ float sm[];
    float* Qs = sm;                   // q · scale
    float* Os = Qs + kTile * kDp;     // dout
    float* Ls = Os + kTile * kDp;     // lse
    float* Ds = Ls + kTile;           // Di
    int* Lq = reinterpret_cast<int*>(Ds + kTile);
    const int g = threadIdx.x & 3, r = threadIdx.x >> 2;
    const int bh = (int)(blockIdx.x / p.nkt), kt = (int)(blockIdx.x % p.nkt);
    const int j = kt * kRows + r, D = p.D;
    const bool key_ok = j < p.Tk;
    const int lkj = p.lq && key_ok ? p.lk[j] : 0;
    const float* krow = k + ((int64_t)bh * p.Tk + j) * D;
    const float* vrow = v + ((int64_t)bh * p.Tk + j) * D;
    float kr[kE], vr[kE], gk[kE], gv[kE];
#pragma unroll
    for (int m = 0; m < kE; ++m) {
        const int d = g + 4 * m;
        kr[m] = key_ok && d < D ? krow[d] : 0.0f;
        vr[m] = key_ok && d < D ? vrow[d] : 0.0f;
        gk[m] = gv[m] = 0.0f;
    }
    const float* qb = q + (int64_t)bh * p.Tq * D;
    const float* ob = dout + (int64_t)bh * p.Tq * D;
    for (int qt = 0; qt < p.nqt; ++qt) {
        const int kind = attn::tile_kind(p, qt, kt, kTile, kRows);
        if (kind == attn::kSkip) continue;
        const int i0 = qt * kTile, nq = min(kTile, p.Tq - i0);
        __syncthreads();
        load_tile<kDp>(Qs, qb, i0, nq, D, p.scale);
        load_tile<kDp>(Os, ob, i0, nq, D, 1.0f);
        if (threadIdx.x < kTile) {
            const int c = threadIdx.x;
            const int64_t row = (int64_t)bh * p.Tq + i0 + c;
            Ls[c] = c < nq ? lse[row] : -INFINITY;
            Ds[c] = c < nq ? di[row] : 0.0f;
            if (p.lq) Lq[c] = c < nq ? p.lq[i0 + c] : 0;
        }
        __syncthreads();
        for (int c = 0; c < nq; ++c) {
            float sp = 0.0f, dp = 0.0f;
#pragma unroll
            for (int m = 0; m < kE; ++m) {
                sp = fmaf(Qs[c * kDp + g + 4 * m], kr[m], sp);
                dp = fmaf(Os[c * kDp + g + 4 * m], vr[m], dp);
            }
            sp = group_sum(sp);
            dp = group_sum(dp);
            const float L = Ls[c];
            const int i = i0 + c;
            const bool vis = key_ok && L != -INFINITY &&
                             (kind == attn::kFull || (p.lq ? lkj <= Lq[c] : !p.causal || j <= i + p.off));
            const float pv = vis ? expf(sp - L) : 0.0f;
            const float ds = pv * (dp - Ds[c]);
#pragma unroll
            for (int m = 0; m < kE; ++m) {
                gv[m] = fmaf(pv, Os[c * kDp + g + 4 * m], gv[m]);
                gk[m] = fmaf(ds, Qs[c * kDp + g + 4 * m], gk[m]);   // Qs carries the scale
            }
        }
    }
    if (!key_ok) return;
    float* dkrow = dk + ((int64_t)bh * p.Tk + j) * D;
    float* dvrow = dv + ((int64_t)bh * p.Tk + j) * D;
#pragma unroll
    for (int m = 0; m < kE; ++m) {
        const int d = g + 4 * m;
        if (d < D) {
            dkrow[d] = gk[m];
            dvrow[d] = gv[m];
        }
    }
}

// dq for query tile qt of head bh: rows are queries; key tiles stream through shared memory.
template <int kE>
__global__ void __launch_bounds__(kThreads) dq_kernel(float* dq, const float* dout, const float* q,
                                                      const float* k, const float* v, const float* lse,
                                                      const float* di, const Params p) {
    constexpr int kDp = 4 * kE;
    extern __shared__ float sm[];
    float* Ks = sm;
    float* Vs = Ks + kTile * kDp;
    int* Lk = reinterpret_cast<int*>(Vs + kTile * kDp);
    const int g = threadIdx.x & 3, r = threadIdx.x >> 2;
    const int bh = (int)(blockIdx.x / p.nqt), qt = p.nqt - 1 - (int)(blockIdx.x % p.nqt);
    const int i = qt * kRows + r, D = p.D;
    const bool row_ok = i < p.Tq;
    const int64_t row = (int64_t)bh * p.Tq + i;
    const int lqi = p.lq && row_ok ? p.lq[i] : 0;
    const float L = row_ok ? lse[row] : -INFINITY;
    const float Di = row_ok ? di[row] : 0.0f;
    float qr[kE], gr[kE], acc[kE];
#pragma unroll
    for (int m = 0; m < kE; ++m) {
        const int d = g + 4 * m;
        qr[m] = row_ok && d < D ? q[row * D + d] * p.scale : 0.0f;
        gr[m] = row_ok && d < D ? dout[row * D + d] : 0.0f;
        acc[m] = 0.0f;
    }
    const float* kb = k + (int64_t)bh * p.Tk * D;
    const float* vb = v + (int64_t)bh * p.Tk * D;
    for (int kt = 0; kt < p.nkt; ++kt) {
        const int kind = attn::tile_kind(p, qt, kt, kRows, kTile);
        if (kind == attn::kSkip) continue;
        const int j0 = kt * kTile, nk = min(kTile, p.Tk - j0);
        __syncthreads();
        load_tile<kDp>(Ks, kb, j0, nk, D, 1.0f);
        load_tile<kDp>(Vs, vb, j0, nk, D, 1.0f);
        if (p.lq && threadIdx.x < kTile) Lk[threadIdx.x] = threadIdx.x < nk ? p.lk[j0 + threadIdx.x] : 0;
        __syncthreads();
        for (int c = 0; c < nk; ++c) {
            float sp = 0.0f, dp = 0.0f;
#pragma unroll
            for (int m = 0; m < kE; ++m) {
                sp = fmaf(qr[m], Ks[c * kDp + g + 4 * m], sp);
                dp = fmaf(gr[m], Vs[c * kDp + g + 4 * m], dp);
            }
            sp = group_sum(sp);
            dp = group_sum(dp);
            const int j = j0 + c;
            const bool vis = row_ok && L != -INFINITY &&
                             (kind == attn::kFull || (p.lq ? Lk[c] <= lqi : !p.causal || j <= i + p.off));
            const float ds = vis ? expf(sp - L) * (dp - Di) : 0.0f;
#pragma unroll
            for (int m = 0; m < kE; ++m) acc[m] = fmaf(ds, Ks[c * kDp + g + 4 * m], acc[m]);
        }
    }
    if (!row_ok) return;
#pragma unroll
    for (int m = 0; m < kE; ++m) {
        const int d = g + 4 * m;
        if (d < D) dq[row * D + d] = acc[m] * p.scale;
    }
}

// Calls f with the per-thread width kE for head dim D (the smallest of 2, 4, 8, 16, 24, 32, 64 that fits).
template <class F>
void with_width(int64_t D, const char* op, F&& f) {
    DD2_CHECK_RANGE(D >= 1 && D <= kAttentionCudaMaxD, op, ": head dim D=", D, " is not supported on cuda (1..",
                    kAttentionCudaMaxD, ")");
    if (D <= 8) f(std::integral_constant<int, 2>());
    else if (D <= 16) f(std::integral_constant<int, 4>());
    else if (D <= 32) f(std::integral_constant<int, 8>());
    else if (D <= 64) f(std::integral_constant<int, 16>());
    else if (D <= 96) f(std::integral_constant<int, 24>());
    else if (D <= 128) f(std::integral_constant<int, 32>());
    else f(std::integral_constant<int, 64>());
}

unsigned grid_of(int64_t n, const char* op) {
    DD2_CHECK_RANGE(n <= INT32_MAX, op, ": too many blocks (", n, ") for the cuda kernels");
    return (unsigned)n;
}

// Shared memory of one block: two tiles of 32 padded rows plus 32 floats/ints per extra array.
template <class K>
size_t prepare_smem(K kernel, int kE, int extra) {
    const size_t bytes = sizeof(float) * (2 * kTile * 4 * kE + extra * kTile);
    if (bytes > 48 * 1024)
        cuda::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                         "attention (shared memory)");
    return bytes;
}

}  // namespace

void attention_forward_f32_cuda(float* o, float* lse, const float* q, const float* k, const float* v,
                                const AttentionShape& s) {
    const char* op = "attention_forward";
    if (s.BH == 0 || s.Tq == 0) return;
    attn::Scratch ranges;
    const Params p = attn::make_params(s, kRows, kTile, ranges, op);
    with_width(s.D, op, [&](auto e) {
        constexpr int kE = decltype(e)::value;
        const size_t smem = prepare_smem(fwd_kernel<kE>, kE, 1);
        fwd_kernel<kE><<<grid_of((int64_t)p.BH * p.nqt, op), kThreads, smem, cuda::stream()>>>(o, lse, q, k, v, p);
        cuda::check_launch(op);
    });
}

void attention_backward_f32_cuda(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                 const float* k, const float* v, const float* o, const float* lse,
                                 const AttentionShape& s) {
    const char* op = "attention_backward";
    const int64_t nq = s.BH * s.Tq * s.D, nk = s.BH * s.Tk * s.D;
    if (s.Tq == 0 || s.Tk == 0) {   // nothing to recompute: gradients are 0
        if (nq) cuda::memset_zero(dq, sizeof(float) * nq);
        if (nk) cuda::memset_zero(dk, sizeof(float) * nk);
        if (nk) cuda::memset_zero(dv, sizeof(float) * nk);
        return;
    }
    if (s.BH == 0) return;
    attn::Scratch ranges;
    const Params p = attn::make_params(s, kRows, kTile, ranges, op);
    attn::Scratch di(sizeof(float) * s.BH * s.Tq);
    with_width(s.D, op, [&](auto e) {
        constexpr int kE = decltype(e)::value;
        rowdot_kernel<<<cuda::blocks_for(s.BH * s.Tq * 32, 256), 256, 0, cuda::stream()>>>(
            di.as<float>(), dout, o, lse, s.BH * s.Tq, p.D);
        cuda::check_launch(op);
        const size_t smem_kv = prepare_smem(dkdv_kernel<kE>, kE, 3);
        dkdv_kernel<kE><<<grid_of((int64_t)p.BH * p.nkt, op), kThreads, smem_kv, cuda::stream()>>>(
            dk, dv, dout, q, k, v, lse, di.as<float>(), p);
        cuda::check_launch(op);
        const size_t smem_q = prepare_smem(dq_kernel<kE>, kE, 1);
        dq_kernel<kE><<<grid_of((int64_t)p.BH * p.nqt, op), kThreads, smem_q, cuda::stream()>>>(
            dq, dout, q, k, v, lse, di.as<float>(), p);
        cuda::check_launch(op);
    });
}

}  // namespace dd2
