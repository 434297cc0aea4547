// Bindings for the optimiser kernels (native/cpu/optim.cpp, native/cuda/optim.cu): in-place updates
// of a parameter and its state. Each wrapper checks buffer sizes and hyperparameter ranges, then
// dispatches.
#include <cmath>

#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/optim.h"
#include "dd2/cuda/optim.h"

using namespace dd2;

// adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2)
DD2_KERNEL(adamw_step, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(4);
    DD2_CHECK_RANGE(n >= 0, "adamw_step: negative element count ", n);
    for (size_t k = 0; k < 4; ++k) a.need(k, n * 4);
    double lr = a.f64(5), b1 = a.f64(6), b2 = a.f64(7), eps = a.f64(8), wd = a.f64(9);
    double bc1 = a.f64(10), bc2 = a.f64(11);
    DD2_CHECK_RANGE(std::isfinite(lr) && lr >= 0, "adamw_step: lr must be finite and >= 0, got ", lr);
    DD2_CHECK_RANGE(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, "adamw_step: betas must lie in [0, 1), got (", b1,
                    ", ", b2, ")");
    DD2_CHECK_RANGE(eps >= 0, "adamw_step: eps must be >= 0, got ", eps);
    DD2_CHECK_RANGE(std::isfinite(wd), "adamw_step: weight decay must be finite, got ", wd);
    DD2_CHECK_RANGE(bc1 > 0 && bc1 <= 1 && bc2 > 0 && bc2 <= 1,
                    "adamw_step: bias corrections must lie in (0, 1], got (", bc1, ", ", bc2, ")");
    DD2_DISPATCH(a, adamw_step_f32_cpu(a.f32(0), a.f32(1), a.f32(2), a.f32(3), n, lr, b1, b2, eps, wd, bc1, bc2),
                 adamw_step_f32_cuda(a.f32(0), a.f32(1), a.f32(2), a.f32(3), n, lr, b1, b2, eps, wd, bc1, bc2));
}

// ema_update(ema, p, n, decay)
DD2_KERNEL(ema_update, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(2);
    DD2_CHECK_RANGE(n >= 0, "ema_update: negative element count ", n);
    a.need(0, n * 4);
    a.need(1, n * 4);
    double decay = a.f64(3);
    DD2_CHECK_RANGE(decay >= 0 && decay <= 1, "ema_update: decay must lie in [0, 1], got ", decay);
    DD2_DISPATCH(a, ema_update_f32_cpu(a.f32(0), a.f32(1), n, decay),
                 ema_update_f32_cuda(a.f32(0), a.f32(1), n, decay));
}
