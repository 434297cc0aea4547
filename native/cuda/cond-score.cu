// DD2 conditional denoiser, its VJP and the fused CSD gradient on the GPU (contracts in
// dd2/cuda/cond-score.h). One warp per token (8 tokens per 256-thread block, grid-stride over tokens).
// Each lane walks the entries j = lane, lane + 32, ... of the token's mixture (V dense or K sparse)
// with an online (flash-style) softmax: its own running maximum m, sum s and weighted code sum
// acc[C] in registers, rescaled when m grows; the 32 partial states are merged with butterfly
// shuffles in a fixed order (every lane ends with the same, run-to-run identical values). No N×V
// weights are ever stored. The VJP pass recomputes the logits, shifts them by the saved lse and
// renormalises by their recomputed sum; it accumulates the centred covariance
// Σ_j w_j ((c_j - D)·g)(c_j - D). The token's x, D and g live in per-warp shared memory (read by all
// lanes at once: a broadcast); the code row is loaded once into registers (as float4 when C % 4 == 0).
// Kernels are templated on the register capacity kC in {8, 16, 32, 64} >= C. Logits (distance,
// log p, running maximum) are double, as on the CPU; exponentials, sums and the covariance terms are
// float. H100, N = 8192 tokens: dense V = 16384, C = 8: fwd 1.33 ms, vjp 1.48 ms, csd 3.06 ms; top-900
// of V = 4096, C = 32: 0.37 / 0.45 / 0.77 ms.
// Tested by test/kernels/cond-score.test.ts with DD2_DEFAULT_DEVICE=cuda.
#include <climits>
#include <cstdint>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cpu/cond-score.h"
#include "dd2/cuda/cond-score.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 1 << 20;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

struct Coeffs {
    double a, inv2;   // 1 - t, 1/(2t²)
    float jac;        // a/t²
    bool vec4;        // code rows can be read as float4
};
__device__ __forceinline__ Coeffs coeffs(float t, bool vec4) {
    const double td = t;
    return {1.0 - td, 0.5 / (td * td), (float)((1.0 - td) / (td * td)), vec4};
}

// The probability inputs of every kernel; entry e of row r.
struct Probs {
    const float* code;
    const float* P;
    const int32_t* idx;
    const float* val;
    int64_t C, V, K;
    unsigned long long* bad;   // sparse only: smallest row with an out-of-range index
    bool vec4;                 // C % 4 == 0 and code 16-byte aligned
    __device__ int64_t n() const { return P ? V : K; }
    // Probability of entry e (0 for an excluded or bad entry) and its code row.
    __device__ float entry(int64_t r, int64_t e, const float** c) const {
        if (P) {
            *c = code + e * C;
            return P[r * V + e];
        }
        const int64_t j = idx[r * K + e];
        if (j < 0 || j >= V) {
            atomicMin(bad, (unsigned long long)r);
            return 0.0f;
        }
        *c = code + j * C;
        return val[r * K + e];
    }
};

// Loads a code row into registers and returns ℓ = log p - ‖x - a·c‖²/(2t²), in double: ℓ scales like
// 1/t² (~1e5 far from every code at t = 1e-3) and only its differences matter, which float loses.
template <int kC>
__device__ __forceinline__ double logit(float (&cr)[kC], const float* c, float p, const float* xs, int C,
                                        const Coeffs& k) {
    if (k.vec4) {   // C % 4 == 0 and 16-byte aligned rows: a quarter of the (uncoalesced) load instructions
#pragma unroll
        for (int q = 0; q < kC; q += 4) {
            const float4 v = q < C ? __ldg(reinterpret_cast<const float4*>(c + q)) : make_float4(0.f, 0.f, 0.f, 0.f);
            cr[q] = v.x, cr[q + 1] = v.y, cr[q + 2] = v.z, cr[q + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int q = 0; q < kC; ++q) cr[q] = q < C ? __ldg(c + q) : 0.0f;
    }
    double d = 0.0;
#pragma unroll
    for (int q = 0; q < kC; ++q) {
        if (q < C) {
            const double diff = (double)xs[q] - k.a * cr[q];
            d += diff * diff;
        }
    }
    return log((double)p) - d * k.inv2;
}

// Warp-wide denoiser at xs (shared): writes D (C) to Ds (shared) and returns lse (same in all lanes).
template <int kC>
__device__ float denoise_warp(float* Ds, const Probs& pr, int64_t r, const float* xs, const Coeffs& k) {
    const int lane = threadIdx.x & 31, C = (int)pr.C;
    double m = -INFINITY;
    float s = 0.0f, acc[kC], cr[kC];
#pragma unroll
    for (int q = 0; q < kC; ++q) acc[q] = 0.0f;
    const int64_t n = pr.n();
    for (int64_t e = lane; e < n; e += 32) {
        const float* c = nullptr;
        const float p = pr.entry(r, e, &c);
        if (p == 0.0f) continue;
        const double l = logit<kC>(cr, c, p, xs, C, k);
        if (l == -INFINITY) continue;   // weight 0 (and -inf - -inf would be NaN below)
        if (l > m) {   // new maximum: rescale the running state (exp(-inf) = 0 on the first entry)
            const float f = expf((float)(m - l));
            s = s * f + 1.0f;
#pragma unroll
            for (int q = 0; q < kC; ++q) acc[q] = acc[q] * f + cr[q];
            m = l;
        } else {
            const float w = expf((float)(l - m));
            s += w;
#pragma unroll
            for (int q = 0; q < kC; ++q) acc[q] += w * cr[q];
        }
    }
    const double M = warp_max(m);
    const float f = m == -INFINITY ? 0.0f : expf((float)(m - M));
    s = warp_sum(s * f);
#pragma unroll
    for (int q = 0; q < kC; ++q) acc[q] = warp_sum(acc[q] * f);
    const bool empty = M == -INFINITY;
    const float inv = empty ? 0.0f : 1.0f / s;
#pragma unroll
    for (int q = 0; q < kC; ++q)
        if (q < C && (q & 31) == lane) Ds[q] = acc[q] * inv;
    __syncwarp();
    return empty ? -INFINITY : (float)(M + log((double)s));
}

// Warp-wide VJP at xs: writes gx (C) = jac·Σ w ((c - D)·g)(c - D) / Σ w to out (global), scaled by
// `mul`, plus `add` (shared, may be null) times addMul. D and g are in shared memory.
template <int kC>
__device__ void cov_warp(float* out, const Probs& pr, int64_t r, const float* xs, const Coeffs& k, float lse,
                         const float* Ds, const float* gs, float mul, const float* add, float addMul) {
    const int lane = threadIdx.x & 31, C = (int)pr.C;
    float s = 0.0f, acc[kC], cr[kC];
#pragma unroll
    for (int q = 0; q < kC; ++q) acc[q] = 0.0f;
    if (lse != -INFINITY && k.jac != 0.0f) {
        const int64_t n = pr.n();
        for (int64_t e = lane; e < n; e += 32) {
            const float* c = nullptr;
            const float p = pr.entry(r, e, &c);
            if (p == 0.0f) continue;
            const float w = expf((float)(logit<kC>(cr, c, p, xs, C, k) - lse));
            if (w == 0.0f) continue;
            s += w;
            float proj = 0.0f;
#pragma unroll
            for (int q = 0; q < kC; ++q) {
                cr[q] -= q < C ? Ds[q] : 0.0f;
                proj += cr[q] * (q < C ? gs[q] : 0.0f);
            }
            const float wp = w * proj;
#pragma unroll
            for (int q = 0; q < kC; ++q) acc[q] += wp * cr[q];
        }
    }
    s = warp_sum(s);
#pragma unroll
    for (int q = 0; q < kC; ++q) acc[q] = warp_sum(acc[q]);
    const float f = s > 0.0f ? k.jac / s : 0.0f;
#pragma unroll
    for (int q = 0; q < kC; ++q)
        if (q < C && (q & 31) == lane) out[q] = mul * (acc[q] * f) + (add ? addMul * add[q] : 0.0f);
}

// Copies n floats of a global row into the warp's shared slot.
__device__ __forceinline__ void to_shared(float* dst, const float* src, int n) {
    for (int q = threadIdx.x & 31; q < n; q += 32) dst[q] = src[q];
    __syncwarp();
}

template <int kC>
__global__ void __launch_bounds__(kThreads) fwd_kernel(float* D, float* lse, const float* x, const float* t, Probs pr,
                                                       int64_t N) {
    __shared__ float xsh[kWarps][kC], dsh[kWarps][kC];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, C = (int)pr.C;
    for (int64_t r = (int64_t)blockIdx.x * kWarps + w; r < N; r += (int64_t)gridDim.x * kWarps) {
        to_shared(xsh[w], x + r * C, C);
        const float L = denoise_warp<kC>(dsh[w], pr, r, xsh[w], coeffs(t[r], pr.vec4));
        for (int q = lane; q < C; q += 32) D[r * C + q] = dsh[w][q];
        if (lane == 0) lse[r] = L;
        __syncwarp();
    }
}

template <int kC>
__global__ void __launch_bounds__(kThreads) vjp_kernel(float* gx, const float* g, const float* x, const float* t,
                                                       Probs pr, const float* lse, const float* D, int64_t N) {
    __shared__ float xsh[kWarps][kC], dsh[kWarps][kC], gsh[kWarps][kC];
    const int w = threadIdx.x >> 5, C = (int)pr.C;
    for (int64_t r = (int64_t)blockIdx.x * kWarps + w; r < N; r += (int64_t)gridDim.x * kWarps) {
        to_shared(xsh[w], x + r * C, C);
        to_shared(dsh[w], D + r * C, C);
        to_shared(gsh[w], g + r * C, C);
        cov_warp<kC>(gx + r * C, pr, r, xsh[w], coeffs(t[r], pr.vec4), lse[r], dsh[w], gsh[w], 1.0f, nullptr, 0.0f);
        __syncwarp();
    }
}

struct CsdParams {
    float alpha, scale, lambda_min;
    bool detached;
};

template <int kC>
__global__ void __launch_bounds__(kThreads) csd_kernel(float* loss, float* gx, float* gDpsi, float* Dphi,
                                                       const float* x, const float* xt, const float* t,
                                                       const float* Dpsi, Probs pr, int64_t N, CsdParams cp) {
    __shared__ float xsh[kWarps][kC], dsh[kWarps][kC], gsh[kWarps][kC], ush[kWarps][kC];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, C = (int)pr.C;
    for (int64_t r = (int64_t)blockIdx.x * kWarps + w; r < N; r += (int64_t)gridDim.x * kWarps) {
        const Coeffs k = coeffs(t[r], pr.vec4);
        to_shared(xsh[w], xt + r * C, C);
        const float L = denoise_warp<kC>(dsh[w], pr, r, xsh[w], k);
        // Per-coordinate terms, lanes over q.
        float dist = 0.0f;
        for (int q = lane; q < C; q += 32) dist += fabsf(x[r * C + q] - dsh[w][q]);
        const float lambda = fmaxf(warp_sum(dist) / (float)C, cp.lambda_min), inv = 1.0f / lambda;
        float lw = 0.0f;
        for (int q = lane; q < C; q += 32) {
            const float Dq = dsh[w][q], u = Dq - Dpsi[r * C + q];
            const float wq = (Dq - x[r * C + q]) - cp.alpha * u;
            lw += u * wq;
            ush[w][q] = u;
            gsh[w][q] = (wq + (1.0f - cp.alpha) * u) * inv;
            gDpsi[r * C + q] = cp.detached ? 0.0f : cp.scale * ((cp.alpha * u - wq) * inv);
            Dphi[r * C + q] = Dq;
        }
        lw = warp_sum(lw);
        if (lane == 0) loss[r] = lw / lambda;
        __syncwarp();
        if (cp.detached) {
            for (int q = lane; q < C; q += 32) gx[r * C + q] = -cp.scale * ush[w][q] * inv;
        } else {
            // gx = scale·a·Jᵀ gphi - scale/lambda·u
            cov_warp<kC>(gx + r * C, pr, r, xsh[w], k, L, dsh[w], gsh[w], cp.scale * (float)k.a, ush[w],
                         -cp.scale * inv);
        }
        __syncwarp();
    }
}

unsigned blocks(int64_t N) {
    const int64_t b = (N + kWarps - 1) / kWarps;
    return (unsigned)(b < kMaxBlocks ? b : kMaxBlocks);
}

// Calls f(std::integral_constant<int, kC>) for the smallest capacity >= C.
template <typename F>
void with_capacity(int64_t C, F f) {
    if (C <= 8) f(std::integral_constant<int, 8>());
    else if (C <= 16) f(std::integral_constant<int, 16>());
    else if (C <= 32) f(std::integral_constant<int, 32>());
    else f(std::integral_constant<int, 64>());
}

void check_args(const char* op, const float* P, const int32_t* idx, const float* val, int64_t N, int64_t C,
                int64_t V, int64_t K) {
    DD2_CHECK_RANGE(N >= 0 && C >= 1 && V >= 1, op, ": bad sizes N=", N, " C=", C, " V=", V);
    DD2_CHECK_RANGE(C <= kCondScoreMaxC, op, ": code dim C=", C, " exceeds the supported maximum ", kCondScoreMaxC);
    DD2_CHECK_RANGE((P != nullptr) != (idx != nullptr || val != nullptr), op,
                    ": pass either dense probabilities or sparse (idx, val), not both or neither");
    if (!P) DD2_CHECK_RANGE(idx && val && K >= 1, op, ": sparse probabilities need both idx and val and K >= 1 (K=", K, ")");
}

// Runs launch(Probs) and, for sparse inputs, throws the CPU's RangeError for the first flagged row.
template <typename L>
void run_checked(const char* op, const float* code, const float* P, const int32_t* idx, const float* val, int64_t C,
                 int64_t V, int64_t K, L launch) {
    const bool vec4 = C % 4 == 0 && reinterpret_cast<uintptr_t>(code) % 16 == 0;
    if (P) {
        launch(Probs{code, P, nullptr, nullptr, C, V, K, nullptr, vec4});
        cuda::check_launch(op);
        return;
    }
    cuda::Scratch bad(sizeof(unsigned long long));
    unsigned long long* flag = bad.as<unsigned long long>();
    cuda::check_cuda(cudaMemsetAsync(flag, 0xff, sizeof(unsigned long long), cuda::stream()), op);
    launch(Probs{code, nullptr, idx, val, C, V, K, flag, vec4});
    cuda::check_launch(op);
    unsigned long long row = 0;
    cuda::check_cuda(cudaMemcpy(&row, flag, sizeof(row), cudaMemcpyDeviceToHost), op);
    if (row == ULLONG_MAX) return;
    std::vector<int32_t> r(K);
    cuda::check_cuda(cudaMemcpy(r.data(), idx + row * K, K * sizeof(int32_t), cudaMemcpyDeviceToHost), op);
    for (int64_t e = 0; e < K; ++e) {
        DD2_CHECK_RANGE(r[e] >= 0 && r[e] < V, op, ": sparse index ", r[e], " at row ", row, ", entry ", e,
                        " is out of range [0, ", V, ")");
    }
}

}  // namespace

void cond_denoise_fwd_f32_cuda(float* D, float* lse, const float* x, const float* t, const float* code,
                               const float* P, const int32_t* idx, const float* val, int64_t N, int64_t C,
                               int64_t V, int64_t K) {
    const char* op = "cond_denoise_fwd";
    check_args(op, P, idx, val, N, C, V, K);
    if (N == 0) return;
    run_checked(op, code, P, idx, val, C, V, K, [&](Probs pr) {
        with_capacity(C, [&](auto cap) {
            fwd_kernel<decltype(cap)::value><<<blocks(N), kThreads, 0, cuda::stream()>>>(D, lse, x, t, pr, N);
        });
    });
}

void cond_denoise_vjp_f32_cuda(float* gx, const float* g, const float* x, const float* t, const float* code,
                               const float* P, const int32_t* idx, const float* val, const float* lse,
                               const float* D, int64_t N, int64_t C, int64_t V, int64_t K) {
    const char* op = "cond_denoise_vjp";
    check_args(op, P, idx, val, N, C, V, K);
    if (N == 0) return;
    run_checked(op, code, P, idx, val, C, V, K, [&](Probs pr) {
        with_capacity(C, [&](auto cap) {
            vjp_kernel<decltype(cap)::value><<<blocks(N), kThreads, 0, cuda::stream()>>>(gx, g, x, t, pr, lse, D, N);
        });
    });
}

void csd_grad_f32_cuda(float* loss, float* gx, float* gDpsi, float* Dphi, const float* x, const float* xt,
                       const float* t, const float* Dpsi, const float* code, const float* P, const int32_t* idx,
                       const float* val, int64_t N, int64_t C, int64_t V, int64_t K, float alpha, float scale,
                       float lambda_min, bool detached) {
    const char* op = "csd_grad";
    check_args(op, P, idx, val, N, C, V, K);
    if (N == 0) return;
    const CsdParams cp{alpha, scale, lambda_min, detached};
    run_checked(op, code, P, idx, val, C, V, K, [&](Probs pr) {
        with_capacity(C, [&](auto cap) {
            csd_kernel<decltype(cap)::value><<<blocks(N), kThreads, 0, cuda::stream()>>>(
                loss, gx, gDpsi, Dphi, x, xt, t, Dpsi, pr, N, cp);
        });
    });
}

}  // namespace dd2
