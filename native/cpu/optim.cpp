// Optimiser kernels: one fused pass over each parameter (AdamW) or parameter/EMA pair, split over
// the thread pool. Per-element arithmetic is float32; the scalar coefficients (lr/bc1, 1/sqrt(bc2),
// decay factors) are formed once in double and rounded to float. Tested by test/kernels/optim.test.ts
// against the float64 references in test/ref/optim.ts.
#include "dd2/cpu/optim.h"

#include <cmath>

#include "common/threadpool.h"

namespace dd2 {
namespace {
constexpr int64_t kGrain = 1 << 14;
}  // namespace

void adamw_step_f32_cpu(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1,
                        double beta2, double eps, double weight_decay, double bc1, double bc2) {
    const float decay = (float)(1.0 - lr * weight_decay);   // decoupled: p *= 1 - lr*wd
    const float b1 = (float)beta1, c1 = (float)(1.0 - beta1);
    const float b2 = (float)beta2, c2 = (float)(1.0 - beta2);
    const float step = (float)(lr / bc1);                    // lr * m / bc1
    const float rbc2 = (float)(1.0 / std::sqrt(bc2));         // sqrt(v / bc2) = sqrt(v) / sqrt(bc2)
    const float e = (float)eps;
    parallel_for(n, kGrain, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            float gi = g[i];
            float mi = b1 * m[i] + c1 * gi;
            float vi = b2 * v[i] + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * decay - step * mi / (std::sqrt(vi) * rbc2 + e);
        }
    });
}

void ema_update_f32_cpu(float* ema, const float* p, int64_t n, double decay) {
    const float d = (float)decay, c = (float)(1.0 - decay);
    parallel_for(n, kGrain, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) ema[i] = d * ema[i] + c * p[i];
    });
}

}  // namespace dd2
