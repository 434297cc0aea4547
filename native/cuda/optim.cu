// Optimiser kernels on the GPU: one fused grid-stride pass over each parameter (AdamW) or
// parameter/EMA pair, n contiguous float32 elements. The arithmetic is native/cpu/optim.cpp's, written
// with __f*_rn intrinsics so nvcc cannot contract a*b + c into a fused multiply-add (the CPU build has
// no FMA), and with the scalar coefficients rounded from double on the host in the same way: the
// results equal the CPU kernels bit for bit. Tested by test/kernels/optim.test.ts.
#include <cmath>

#include "cuda/common.cuh"
#include "dd2/cuda/optim.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;

// a moved towards x by weight w; wc = 1 - w. The CPU's lerp: a + w (x - a), or x - wc (x - a) when
// w >= 1/2, so that w = 0 and w = 1 are exact.
__device__ __forceinline__ float lerp_rn(float a, float x, float w, float wc) {
    const float d = __fsub_rn(x, a);
    return w < 0.5f ? __fadd_rn(a, __fmul_rn(w, d)) : __fsub_rn(x, __fmul_rn(wc, d));
}

struct AdamCoef {
    float decay, c1, b1, c2, b2, step, rbc2, eps;
};

__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, AdamCoef k) {
    DD2_GRID_LOOP(i, n) {
        const float gi = g[i];
        const float mi = lerp_rn(m[i], gi, k.c1, k.b1);
        const float vi = lerp_rn(v[i], __fmul_rn(gi, gi), k.c2, k.b2);
        m[i] = mi;
        v[i] = vi;
        // p * decay - (step * m) / (sqrt(v) * rbc2 + eps), each operation rounded
        const float den = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), k.rbc2), k.eps);
        p[i] = __fsub_rn(__fmul_rn(p[i], k.decay), __fdiv_rn(__fmul_rn(k.step, mi), den));
    }
}

__global__ void ema_kernel(float* __restrict__ ema, const float* __restrict__ p, int64_t n, float c, float d) {
    DD2_GRID_LOOP(i, n) ema[i] = lerp_rn(ema[i], p[i], c, d);
}

}  // namespace

void adamw_step_f32_cuda(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1,
                         double beta2, double eps, double weight_decay, double bc1, double bc2) {
    if (n <= 0) return;
    AdamCoef k;   // the CPU kernel's coefficients, rounded the same way
    k.decay = (float)(1.0 - lr * weight_decay);
    k.c1 = (float)(1.0 - beta1);
    k.b1 = (float)beta1;
    k.c2 = (float)(1.0 - beta2);
    k.b2 = (float)beta2;
    k.step = (float)(lr / bc1);
    k.rbc2 = (float)(1.0 / std::sqrt(bc2));
    k.eps = (float)eps;
    adamw_kernel<<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream()>>>(p, g, m, v, n, k);
    cuda::check_launch("adamw_step");
}

void ema_update_f32_cuda(float* ema, const float* p, int64_t n, double decay) {
    if (n <= 0) return;
    const float c = (float)(1.0 - decay), d = (float)decay;
    ema_kernel<<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream()>>>(ema, p, n, c, d);
    cuda::check_launch("ema_update");
}

}  // namespace dd2
