// Optimiser kernels on the GPU, float32, in place over n contiguous elements: the same contracts as
// dd2/cpu/optim.h (pointers are device memory; every call enqueues on cuda::stream()). The per-element
// arithmetic is written with round-to-nearest intrinsics (no fused multiply-add), in the CPU's order
// and lerp form, with the scalar coefficients rounded from double exactly as the CPU rounds them, so
// the results equal the CPU kernels bit for bit.
#pragma once
#include <cstdint>

namespace dd2 {

// p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr * (m/bc1) / (sqrt(v/bc2) + eps)
void adamw_step_f32_cuda(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1,
                         double beta2, double eps, double weight_decay, double bc1, double bc2);

// ema = decay * ema + (1 - decay) * p
void ema_update_f32_cuda(float* ema, const float* p, int64_t n, double decay);

}  // namespace dd2
