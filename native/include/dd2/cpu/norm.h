// Layer, RMS and group normalisation on the CPU, float32. Statistics are computed in double (two
// passes: mean, then the sum of squared deviations), so a large common offset such as 1000 + N(0, 1)
// costs no accuracy; mean and rstd = 1/sqrt(var + eps) are saved per row (per (N, G) for group norm)
// as float32 for the backward pass, which re-centres on the exact row mean from x (see norm.cpp).
// Dimension letters: rows x cols for layer/RMS norm (normalised over cols); N batch, C channels,
// HW spatial size, G groups of C/G channels for group norm. Optional pointers (w, b, dx, dw, db) may
// be null; gradients are written, never accumulated. dw/db reductions over rows are parallelised over
// channel blocks, so they are race-free and deterministic.
#pragma once
#include <cstdint>

namespace dd2 {

// y = (x - mean) * rstd * w + b over each row of (rows, cols); w, b (cols) optional.
void layer_norm_forward_f32_cpu(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                int64_t rows, int64_t cols, double eps);
void layer_norm_backward_f32_cpu(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                 const float* mean, const float* rstd, int64_t rows, int64_t cols);

// LlamaGen / T5 RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w; w (cols) optional.
void rms_norm_forward_f32_cpu(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t cols,
                              double eps);
void rms_norm_backward_f32_cpu(float* dx, float* dw, const float* dy, const float* x, const float* w,
                               const float* rstd, int64_t rows, int64_t cols);

// x (N, C, HW); statistics over each (n, g) block of C/G channels x HW; w, b (C) per channel.
void group_norm_forward_f32_cpu(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                int64_t N, int64_t C, int64_t HW, int64_t G, double eps);
void group_norm_backward_f32_cpu(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                 const float* mean, const float* rstd, int64_t N, int64_t C, int64_t HW, int64_t G);

}  // namespace dd2
