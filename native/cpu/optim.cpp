// Optimiser kernels: one fused pass over each parameter (AdamW) or parameter/EMA pair, split over
// the thread pool. Per-element arithmetic is float32; the scalar coefficients (lr/bc1, 1/sqrt(bc2),
// 1 - beta) are formed once in double and rounded to float. Running averages are written in lerp form
// a + w (x - a) (or x - (1 - w)(x - a) when w >= 1/2, so w = 0 and w = 1 are exact): with
// beta·a + (1 - beta)·x the two rounded coefficients need not sum to 1, which biases the fixed point
// (by ~3e-4 relative for an EMA with decay 0.9999 in float32).
// Tested by test/kernels/optim.test.ts against the float64 references in test/ref/optim.ts.
#include "dd2/cpu/optim.h"

#include <cmath>

#include "common/threadpool.h"

namespace dd2 {
namespace {
constexpr int64_t kGrain = 1 << 14;

// a moved towards x by weight w; wc = 1 - w (both rounded from double by the caller)
inline float lerp(float a, float x, float w, float wc) {
    return w < 0.5f ? a + w * (x - a) : x - wc * (x - a);
}
}  // namespace

void adamw_step_f32_cpu(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1,
                        double beta2, double eps, double weight_decay, double bc1, double bc2) {
    const float decay = (float)(1.0 - lr * weight_decay);   // decoupled: p *= 1 - lr*wd
    const float c1 = (float)(1.0 - beta1), b1 = (float)beta1;
    const float c2 = (float)(1.0 - beta2), b2 = (float)beta2;
    const float step = (float)(lr / bc1);                    // lr * m / bc1
    const float rbc2 = (float)(1.0 / std::sqrt(bc2));         // sqrt(v / bc2) = sqrt(v) / sqrt(bc2)
    const float e = (float)eps;
    parallel_for(n, kGrain, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            float gi = g[i];
            float mi = lerp(m[i], gi, c1, b1);
            float vi = lerp(v[i], gi * gi, c2, b2);
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * decay - step * mi / (std::sqrt(vi) * rbc2 + e);
        }
    });
}

void ema_update_f32_cpu(float* ema, const float* p, int64_t n, double decay) {
    const float c = (float)(1.0 - decay), d = (float)decay;
    parallel_for(n, kGrain, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) ema[i] = lerp(ema[i], p[i], c, d);
    });
}

}  // namespace dd2
