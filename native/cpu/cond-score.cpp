// DD2 conditional denoiser, its VJP and the fused CSD gradient on the CPU (contracts in
// dd2/cpu/cond-score.h). Tokens (rows) are independent and split over the thread pool. Each row takes
// two passes over its mixture entries (V dense or K sparse): the first writes the logits (double) to a
// per-chunk scratch row and finds their maximum, the second exponentiates the shifted logits in float
// and accumulates in double. The
// VJP recomputes the logits with the same float code, shifts them by the saved lse and renormalises by
// the recomputed sum, which cancels the float rounding of lse.
// Tested by test/kernels/cond-score.test.ts against test/ref/cond-score.ts.
#include "dd2/cpu/cond-score.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/threadpool.h"

namespace dd2 {
namespace {

// One token's mixture: entry e of n has probability prob(e) and code row codeRow(e).
struct Mixture {
    const float* code;
    const float* p;        // dense row (V) or sparse values (K)
    const int32_t* idx;    // sparse indices (K) or null
    int64_t n, C;
    float prob(int64_t e) const { return p[e]; }
    const float* codeRow(int64_t e) const { return code + (idx ? (int64_t)idx[e] : e) * C; }
};

Mixture mixture_of(int64_t r, const float* code, const float* P, const int32_t* idx, const float* val, int64_t C,
                   int64_t V, int64_t K) {
    if (P) return {code, P + r * V, nullptr, V, C};
    return {code, val + r * K, idx + r * K, K, C};
}

// ℓ = log p - ‖x - a·c‖²·inv2 (inv2 = 1/(2t²)) in double; -inf for p = 0 without touching the code row.
// ℓ scales like 1/t² (~1e5 for a point far from every code at t = 1e-3) while only differences of
// ℓ matter; float would lose them (float32 logits gave D errors of 5e-5 at t = 1e-3 and 1e-5 at t = 0.1).
inline double logit(const Mixture& m, int64_t e, const float* x, double a, double inv2) {
    const float p = m.prob(e);
    if (p == 0.0f) return -INFINITY;
    const float* c = m.codeRow(e);
    double d = 0.0;
    for (int64_t k = 0; k < m.C; ++k) {
        const double diff = (double)x[k] - a * c[k];
        d += diff * diff;
    }
    return std::log((double)p) - d * inv2;
}

struct Coeffs {
    double a, inv2, jac;   // 1 - t, 1/(2t²), a/t²
};
inline Coeffs coeffs(float t) {
    const double td = t;
    return {1.0 - td, 0.5 / (td * td), (1.0 - td) / (td * td)};
}

// D (C) and the returned lse of one row; l is scratch of m.n doubles.
float denoise_row(float* D, const Mixture& m, const float* x, const Coeffs& k, double* l) {
    double mx = -INFINITY;
    for (int64_t e = 0; e < m.n; ++e) {
        l[e] = logit(m, e, x, k.a, k.inv2);
        mx = l[e] > mx ? l[e] : mx;
    }
    if (mx == -INFINITY) {
        std::fill(D, D + m.C, 0.0f);
        return -INFINITY;
    }
    double acc[kCondScoreMaxC] = {};
    double s = 0.0;
    for (int64_t e = 0; e < m.n; ++e) {
        const float w = std::exp((float)(l[e] - mx));
        if (w == 0.0f) continue;   // underflowed (or excluded) entry: nothing to add
        s += w;
        const float* c = m.codeRow(e);
        for (int64_t j = 0; j < m.C; ++j) acc[j] += (double)w * c[j];
    }
    for (int64_t j = 0; j < m.C; ++j) D[j] = (float)(acc[j] / s);
    return (float)(mx + std::log(s));
}

// gx (C) = (a/t²)·Σ_e w_e ((c_e - D)·g)(c_e - D), w_e = exp(ℓ_e - lse) / Σ exp(ℓ - lse).
void cov_row(float* gx, const Mixture& m, const float* x, const Coeffs& k, float lse, const float* D,
             const float* g) {
    if (lse == -INFINITY || k.jac == 0.0) {
        std::fill(gx, gx + m.C, 0.0f);
        return;
    }
    double acc[kCondScoreMaxC] = {};
    float diff[kCondScoreMaxC];
    double s = 0.0;
    for (int64_t e = 0; e < m.n; ++e) {
        const float w = std::exp((float)(logit(m, e, x, k.a, k.inv2) - lse));
        if (w == 0.0f) continue;
        s += w;
        const float* c = m.codeRow(e);
        float proj = 0.0f;
        for (int64_t j = 0; j < m.C; ++j) {
            diff[j] = c[j] - D[j];
            proj += diff[j] * g[j];
        }
        const double wp = (double)w * proj;
        for (int64_t j = 0; j < m.C; ++j) acc[j] += wp * diff[j];
    }
    const double f = s > 0.0 ? k.jac / s : 0.0;
    for (int64_t j = 0; j < m.C; ++j) gx[j] = (float)(acc[j] * f);
}

// Rows per parallel chunk: about 8k logits of work each.
int64_t grain(int64_t n, int64_t C) { return std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(1, n * C)); }

void check_args(const char* op, const float* P, const int32_t* idx, const float* val, int64_t N, int64_t C,
                int64_t V, int64_t K) {
    DD2_CHECK_RANGE(N >= 0 && C >= 1 && V >= 1, op, ": bad sizes N=", N, " C=", C, " V=", V);
    DD2_CHECK_RANGE(C <= kCondScoreMaxC, op, ": code dim C=", C, " exceeds the supported maximum ", kCondScoreMaxC);
    DD2_CHECK_RANGE((P != nullptr) != (idx != nullptr || val != nullptr), op,
                    ": pass either dense probabilities or sparse (idx, val), not both or neither");
    if (!P) {
        DD2_CHECK_RANGE(idx && val && K >= 1, op, ": sparse probabilities need both idx and val and K >= 1 (K=", K, ")");
        cond_score_check_sparse(op, idx, N, V, K);
    }
}

}  // namespace

void cond_score_check_sparse(const char* op, const int32_t* idx, int64_t N, int64_t V, int64_t K) {
    for (int64_t i = 0; i < N * K; ++i) {
        DD2_CHECK_RANGE(idx[i] >= 0 && idx[i] < V, op, ": sparse index ", idx[i], " at row ", i / K, ", entry ",
                        i % K, " is out of range [0, ", V, ")");
    }
}

void cond_denoise_fwd_f32_cpu(float* D, float* lse, const float* x, const float* t, const float* code,
                              const float* P, const int32_t* idx, const float* val, int64_t N, int64_t C,
                              int64_t V, int64_t K) {
    check_args("cond_denoise_fwd", P, idx, val, N, C, V, K);
    const int64_t n = P ? V : K;
    parallel_for(N, grain(n, C), [=](int64_t rb, int64_t re) {
        std::vector<double> l(n);
        for (int64_t r = rb; r < re; ++r) {
            const Mixture m = mixture_of(r, code, P, idx, val, C, V, K);
            lse[r] = denoise_row(D + r * C, m, x + r * C, coeffs(t[r]), l.data());
        }
    });
}

void cond_denoise_vjp_f32_cpu(float* gx, const float* g, const float* x, const float* t, const float* code,
                              const float* P, const int32_t* idx, const float* val, const float* lse,
                              const float* D, int64_t N, int64_t C, int64_t V, int64_t K) {
    check_args("cond_denoise_vjp", P, idx, val, N, C, V, K);
    const int64_t n = P ? V : K;
    parallel_for(N, grain(n, C), [=](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const Mixture m = mixture_of(r, code, P, idx, val, C, V, K);
            cov_row(gx + r * C, m, x + r * C, coeffs(t[r]), lse[r], D + r * C, g + r * C);
        }
    });
}

void csd_grad_f32_cpu(float* loss, float* gx, float* gDpsi, float* Dphi, const float* x, const float* xt,
                      const float* t, const float* Dpsi, const float* code, const float* P, const int32_t* idx,
                      const float* val, int64_t N, int64_t C, int64_t V, int64_t K, float alpha, float scale,
                      float lambda_min, bool detached) {
    check_args("csd_grad", P, idx, val, N, C, V, K);
    const int64_t n = P ? V : K;
    parallel_for(N, grain(n, C), [=](int64_t rb, int64_t re) {
        std::vector<double> l(n);
        float u[kCondScoreMaxC], gphi[kCondScoreMaxC], gj[kCondScoreMaxC];
        for (int64_t r = rb; r < re; ++r) {
            const Mixture m = mixture_of(r, code, P, idx, val, C, V, K);
            const Coeffs k = coeffs(t[r]);
            const float *xr = x + r * C, *pr = Dpsi + r * C;
            float* Dr = Dphi + r * C;
            const float L = denoise_row(Dr, m, xt + r * C, k, l.data());
            double dist = 0.0;
            for (int64_t j = 0; j < C; ++j) dist += std::fabs((double)xr[j] - Dr[j]);
            const float lambda = std::max((float)(dist / (double)C), lambda_min);
            const float inv = 1.0f / lambda;
            double lw = 0.0;
            float* go = gDpsi + r * C;
            for (int64_t j = 0; j < C; ++j) {
                u[j] = Dr[j] - pr[j];
                const float w = (Dr[j] - xr[j]) - alpha * u[j];
                lw += (double)u[j] * w;
                gphi[j] = (w + (1.0f - alpha) * u[j]) * inv;
                go[j] = detached ? 0.0f : scale * ((alpha * u[j] - w) * inv);
            }
            loss[r] = (float)(lw / lambda);
            float* gr = gx + r * C;
            if (detached) {
                for (int64_t j = 0; j < C; ++j) gr[j] = -scale * u[j] * inv;
                continue;
            }
            cov_row(gj, m, xt + r * C, k, L, Dr, gphi);
            for (int64_t j = 0; j < C; ++j) gr[j] = scale * ((float)k.a * gj[j] - u[j] * inv);
        }
    });
}

}  // namespace dd2
