// DD2's closed-form conditional denoiser (METHOD.md §2.3) and the fused CSD gradient (§5.3) on the CPU,
// float32. Per token i (C = code dim <= kCondScoreMaxC, V = codebook size, a = 1 - t):
//   the mixture p_t(x) = Σ_j p_j N(x; a c_j, t² I) over the codebook c (V, C) with the token's own
//   probabilities p (dense P (N, V), or sparse top-k idx (N, K) int32 / val (N, K) float32);
//   logits ℓ_j = log p_j - ‖x - a c_j‖² / (2t²), w = softmax_j(ℓ), D = Σ_j w_j c_j.
// The logits keep the ‖x‖² term (the distance form) and are computed in double: the term is
// mathematically a common shift, but ℓ scales like 1/t² (~1e5 at t = 1e-3 away from the codes) and
// only differences of ℓ decide the weights; expanded or float logits lose those digits. Entries with p_j = 0 are excluded (ℓ = -inf); a row with no positive
// p_j gives D = 0, lse = -inf and zero gradients. t must lie in (0, 1]; t <= 0 gives inf/NaN.
// lse[i] = logsumexp_j ℓ_j, so log p_t(x_i) = lse[i] - C·log(t_i·sqrt(2π)).
// Exactly one of P and (idx, val) is non-null; sparse indices must lie in [0, V) (RangeError naming the
// row and entry otherwise, thrown before anything is written).
// The VJP uses the centred covariance, g_x = (a/t²)·Σ_j w_j ((c_j - D)·g)(c_j - D), with w recomputed
// from the saved lse (and renormalised), which stays accurate when the weights are one-hot.
#pragma once
#include <cstdint>

namespace dd2 {

constexpr int64_t kCondScoreMaxC = 64;

// Shapes and index range of the probability inputs; throws dd2::RangeError with `op` in the message.
void cond_score_check_sparse(const char* op, const int32_t* idx, int64_t N, int64_t V, int64_t K);

// D (N, C), lse (N) from x (N, C), t (N), code (V, C), and P (N, V) or idx/val (N, K).
void cond_denoise_fwd_f32_cpu(float* D, float* lse, const float* x, const float* t, const float* code,
                              const float* P, const int32_t* idx, const float* val, int64_t N, int64_t C,
                              int64_t V, int64_t K);

// gx (N, C) = (∂D/∂x)ᵀ g for upstream g (N, C), given the forward's lse (N) and D (N, C).
void cond_denoise_vjp_f32_cpu(float* gx, const float* g, const float* x, const float* t, const float* code,
                              const float* P, const int32_t* idx, const float* val, const float* lse,
                              const float* D, int64_t N, int64_t C, int64_t V, int64_t K);

// The SiD / CSD per-token loss and its gradients (METHOD.md §5.3), with Dphi = D(xt):
//   u = Dphi - Dpsi, w = (Dphi - x) - alpha·u, lambda = max(mean_c |x - Dphi|, lambda_min) (constant),
//   loss[i] = u·w / lambda (not multiplied by scale),
//   gDphi = (w + (1 - alpha)·u)/lambda, gDpsi = (alpha·u - w)/lambda;
//   detached = false: gx = scale·(-u/lambda + a·J(xt)ᵀ gDphi), gDpsi_out = scale·gDpsi;
//   detached = true:  gx = scale·(-u/lambda), gDpsi_out = 0.
// x, xt, Dpsi (N, C); t (N); outputs loss (N), gx, gDpsi, Dphi (N, C).
void csd_grad_f32_cpu(float* loss, float* gx, float* gDpsi, float* Dphi, const float* x, const float* xt,
                      const float* t, const float* Dpsi, const float* code, const float* P, const int32_t* idx,
                      const float* val, int64_t N, int64_t C, int64_t V, int64_t K, float alpha, float scale,
                      float lambda_min, bool detached);

}  // namespace dd2
