// Layer, RMS and group normalisation on the GPU, float32: the same contracts as dd2/cpu/norm.h
// (statistics in double with two passes, saved mean/rstd as float32, backward re-centring on the exact
// mean recovered from x; optional pointers w, b, dx, dw, db may be null; gradients are written, never
// accumulated). Pointers are device memory; every call enqueues on cuda::stream().
// Letters: rows x cols for layer/RMS norm (normalised over cols); N batch, C channels, HW spatial size,
// G groups of C/G channels for group norm. dw/db are deterministic column sums: per-chunk partial sums
// in double into scratch, then a second kernel adds the partials in a fixed order (no atomics).
#pragma once
#include <cstdint>

namespace dd2 {

void layer_norm_forward_f32_cuda(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                 int64_t rows, int64_t cols, double eps);
void layer_norm_backward_f32_cuda(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                  const float* mean, const float* rstd, int64_t rows, int64_t cols);

void rms_norm_forward_f32_cuda(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t cols,
                               double eps);
void rms_norm_backward_f32_cuda(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                const float* rstd, int64_t rows, int64_t cols);

// x (N, C, HW); statistics over each (n, g) block of C/G channels x HW; w, b (C) per channel.
void group_norm_forward_f32_cuda(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                 int64_t N, int64_t C, int64_t HW, int64_t G, double eps);
void group_norm_backward_f32_cuda(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                  const float* mean, const float* rstd, int64_t N, int64_t C, int64_t HW, int64_t G);

}  // namespace dd2
