// DD2 conditional denoiser, its VJP and the fused CSD gradient on the GPU, float32: the same contracts
// as dd2/cpu/cond-score.h (distance-form logits, excluded p = 0 entries, empty rows giving D = 0,
// lse = -inf and zero gradients, centred-covariance VJP). Pointers are device memory; every call
// enqueues on cuda::stream(). Sparse indices are checked inside the kernels: an entry outside [0, V)
// is skipped and flagged; the first flagged row is read back after the kernel (one synchronisation
// per sparse call) and thrown as the CPU's RangeError (the good rows' outputs are written by then).
// Deterministic (no atomics on data). C <= kCondScoreMaxC (64).
#pragma once
#include <cstdint>

namespace dd2 {

void cond_denoise_fwd_f32_cuda(float* D, float* lse, const float* x, const float* t, const float* code,
                               const float* P, const int32_t* idx, const float* val, int64_t N, int64_t C,
                               int64_t V, int64_t K);

void cond_denoise_vjp_f32_cuda(float* gx, const float* g, const float* x, const float* t, const float* code,
                               const float* P, const int32_t* idx, const float* val, const float* lse,
                               const float* D, int64_t N, int64_t C, int64_t V, int64_t K);

void csd_grad_f32_cuda(float* loss, float* gx, float* gDpsi, float* Dphi, const float* x, const float* xt,
                       const float* t, const float* Dpsi, const float* code, const float* P, const int32_t* idx,
                       const float* val, int64_t N, int64_t C, int64_t V, int64_t K, float alpha, float scale,
                       float lambda_min, bool detached);

}  // namespace dd2
