// Optimiser kernels on the CPU, float32, in place over n contiguous elements:
//   adamw_step: AdamW with decoupled weight decay (PyTorch semantics) on a parameter p, its gradient g
//               and the first/second moments m, v;
//   ema_update: exponential moving average of parameters, ema = decay * ema + (1 - decay) * p.
#pragma once
#include <cstdint>

namespace dd2 {

// p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr * (m/bc1) / (sqrt(v/bc2) + eps)
// bc1 = 1 - b1^t and bc2 = 1 - b2^t are the bias corrections of step t (computed by the caller).
void adamw_step_f32_cpu(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1,
                        double beta2, double eps, double weight_decay, double bc1, double bc2);

// ema = decay * ema + (1 - decay) * p
void ema_update_f32_cpu(float* ema, const float* p, int64_t n, double decay);

}  // namespace dd2
