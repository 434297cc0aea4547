// Bindings for DD2's conditional denoiser, its VJP and the fused CSD gradient (native/cpu/cond-score.cpp,
// native/cuda/cond-score.cu): unpack ids and sizes, check that every buffer is large enough and that
// exactly one probability form is given, dispatch on the tensors' device. Argument order as in
// lib/tensor/native.ts; optional probability tensors are -1.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/cond-score.h"
#include "dd2/cuda/cond-score.h"

using namespace dd2;

namespace {

// The probability arguments at positions k (P), k + 1 (idx), k + 2 (val), checked against N, V, K.
struct ProbArgs {
    float* P;
    int32_t* idx;
    float* val;
};

ProbArgs probs(Args& a, size_t k, int64_t N, int64_t C, int64_t V, int64_t K) {
    DD2_CHECK_RANGE(N >= 0 && C >= 1 && V >= 1 && K >= 0, a.op(), ": bad sizes N=", N, " C=", C, " V=", V, " K=", K);
    DD2_CHECK_RANGE(C <= kCondScoreMaxC, a.op(), ": code dim C=", C, " exceeds the supported maximum ",
                    kCondScoreMaxC);
    const bool dense = !a.absent(k), hasIdx = !a.absent(k + 1), hasVal = !a.absent(k + 2);
    DD2_CHECK_RANGE(dense != (hasIdx || hasVal), a.op(),
                    ": pass either dense probabilities P or sparse (idx, val), not both or neither");
    DD2_CHECK_RANGE(dense || (hasIdx && hasVal && K >= 1), a.op(),
                    ": sparse probabilities need both idx and val and K >= 1 (K=", K, ")");
    if (dense) {
        a.need(k, N * V * 4);
        return {a.f32(k), nullptr, nullptr};
    }
    a.need(k + 1, N * K * 4);
    a.need(k + 2, N * K * 4);
    return {nullptr, a.i32(k + 1), a.f32(k + 2)};
}

}  // namespace

// (D, lse, x, t, code, P, idx, val, N, C, V, K)
DD2_KERNEL(cond_denoise_fwd, ON_CPU | DD2_CUDA_IF_BUILT) {
    const int64_t N = a.i64(8), C = a.i64(9), V = a.i64(10), K = a.i64(11);
    const ProbArgs p = probs(a, 5, N, C, V, K);
    a.need(0, N * C * 4);
    a.need(1, N * 4);
    a.need(2, N * C * 4);
    a.need(3, N * 4);
    a.need(4, V * C * 4);
    float *D = a.f32(0), *lse = a.f32(1), *x = a.f32(2), *t = a.f32(3), *code = a.f32(4);
    DD2_DISPATCH(a, cond_denoise_fwd_f32_cpu(D, lse, x, t, code, p.P, p.idx, p.val, N, C, V, K),
                 cond_denoise_fwd_f32_cuda(D, lse, x, t, code, p.P, p.idx, p.val, N, C, V, K));
}

// (gx, g, x, t, code, P, idx, val, lse, D, N, C, V, K)
DD2_KERNEL(cond_denoise_vjp, ON_CPU | DD2_CUDA_IF_BUILT) {
    const int64_t N = a.i64(10), C = a.i64(11), V = a.i64(12), K = a.i64(13);
    const ProbArgs p = probs(a, 5, N, C, V, K);
    for (size_t k : {0, 1, 2, 9}) a.need(k, N * C * 4);
    a.need(3, N * 4);
    a.need(4, V * C * 4);
    a.need(8, N * 4);
    float *gx = a.f32(0), *g = a.f32(1), *x = a.f32(2), *t = a.f32(3), *code = a.f32(4), *lse = a.f32(8),
          *D = a.f32(9);
    DD2_DISPATCH(a, cond_denoise_vjp_f32_cpu(gx, g, x, t, code, p.P, p.idx, p.val, lse, D, N, C, V, K),
                 cond_denoise_vjp_f32_cuda(gx, g, x, t, code, p.P, p.idx, p.val, lse, D, N, C, V, K));
}

// (loss, gx, gDpsi, Dphi, x, xt, t, Dpsi, code, P, idx, val, N, C, V, K, alpha, scale, lambdaMin, detached)
DD2_KERNEL(csd_grad, ON_CPU | DD2_CUDA_IF_BUILT) {
    const int64_t N = a.i64(12), C = a.i64(13), V = a.i64(14), K = a.i64(15);
    const ProbArgs p = probs(a, 9, N, C, V, K);
    a.need(0, N * 4);
    for (size_t k : {1, 2, 3, 4, 5, 7}) a.need(k, N * C * 4);
    a.need(6, N * 4);
    a.need(8, V * C * 4);
    const float alpha = (float)a.f64(16), scale = (float)a.f64(17), lambda_min = (float)a.f64(18);
    const bool detached = a.flag(19);
    float *loss = a.f32(0), *gx = a.f32(1), *gDpsi = a.f32(2), *Dphi = a.f32(3), *x = a.f32(4), *xt = a.f32(5),
          *t = a.f32(6), *Dpsi = a.f32(7), *code = a.f32(8);
    DD2_DISPATCH(a, csd_grad_f32_cpu(loss, gx, gDpsi, Dphi, x, xt, t, Dpsi, code, p.P, p.idx, p.val, N, C, V, K,
                                     alpha, scale, lambda_min, detached),
                 csd_grad_f32_cuda(loss, gx, gDpsi, Dphi, x, xt, t, Dpsi, code, p.P, p.idx, p.val, N, C, V, K,
                                   alpha, scale, lambda_min, detached));
}
