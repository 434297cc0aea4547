// Fused attention on the CPU, flash-attention style. Letters: BH batch × heads, Tq query rows, Tk keys,
// D head dim; work is cut into blocks of BQ query rows and tiles of BK keys (key tiles are transposed
// once per call). The forward streams key tiles through an online softmax (running max m, running sum
// l, rescaled accumulator), holding one row of one score tile at a time, and saves lse = m + log l; the
// backward recomputes P = exp(s - lse) tile by tile. Float32 arithmetic and accumulation (Di = rowsum
// (dout ⊙ o) in double). Hot loops are compiled for avx512f, avx2+fma and the baseline ISA, picked at
// run time. Tested by test/kernels/attention.test.ts against the float64 reference in test/ref/.
#include "dd2/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/threadpool.h"

#define DD2_AI inline __attribute__((always_inline))

namespace dd2 {
namespace {

constexpr int64_t BQ = 32;   // query rows per block (one unit of parallel work in the forward)
constexpr int64_t BK = 64;   // keys per tile; score rows have this fixed length so their loops vectorise
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

enum Tile { kSkip = 0, kPartial = 1, kFull = 2 };

// Shapes plus a summary of the mask for every (query block, key tile) pair.
struct Plan {
    AttentionShape s;
    int64_t nqb = 0, nkt = 0, off = 0;             // off = Tk - Tq (the causal diagonal shift)
    std::vector<int32_t> qmin, qmax, kmin, kmax;   // level range of each query block / key tile

    explicit Plan(const AttentionShape& sh) : s(sh) {
        nqb = (s.Tq + BQ - 1) / BQ;
        nkt = (s.Tk + BK - 1) / BK;
        off = s.Tk - s.Tq;
        if (s.level_q) {
            level_ranges(s.level_q, s.Tq, BQ, qmin, qmax);
            level_ranges(s.level_k, s.Tk, BK, kmin, kmax);
        }
    }
    static void level_ranges(const int32_t* lv, int64_t n, int64_t blk, std::vector<int32_t>& lo,
                             std::vector<int32_t>& hi) {
        for (int64_t b = 0; b < n; b += blk) {
            int32_t mn = lv[b], mx = lv[b];
            for (int64_t i = b; i < std::min(n, b + blk); ++i) {
                mn = std::min(mn, lv[i]);
                mx = std::max(mx, lv[i]);
            }
            lo.push_back(mn);
            hi.push_back(mx);
        }
    }
    // Whether key tile kt is invisible to every row of query block qb, visible to all, or mixed.
    Tile classify(int64_t qb, int64_t kt) const {
        if (s.level_q) {
            if (kmin[kt] > qmax[qb]) return kSkip;
            return kmax[kt] <= qmin[qb] ? kFull : kPartial;
        }
        if (!s.causal) return kFull;
        const int64_t i0 = qb * BQ, i1 = std::min(s.Tq, i0 + BQ);
        const int64_t j0 = kt * BK, j1 = std::min(s.Tk, j0 + BK);
        if (j0 > i1 - 1 + off) return kSkip;
        return j1 - 1 <= i0 + off ? kFull : kPartial;
    }
};

// exp(x) for x <= 88 with ~1 ulp error, written branch-free so loops over it vectorise: x = n·ln2 + r,
// |r| <= ln2/2, exp(r) by a degree-6 polynomial (Cephes coefficients), 2^n from the exponent bits.
// Arguments below -87 (including -inf from masked scores) give exactly 0.
DD2_AI float exp_approx(float x) {
    const float xc = std::min(std::max(x, -87.0f), 88.0f);
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round to nearest
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    std::memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : y * two_n;
}

// dst[d*BK + c] = src[c*D + d] for c < n, zero for n <= c < BK (a transposed, padded key tile).
DD2_AI void transpose_tile(float* __restrict dst, const float* __restrict src, int64_t n, int64_t D) {
    for (int64_t c = 0; c < n; ++c)
        for (int64_t d = 0; d < D; ++d) dst[d * BK + c] = src[c * D + d];
    if (n < BK)
        for (int64_t d = 0; d < D; ++d)
            for (int64_t c = n; c < BK; ++c) dst[d * BK + c] = 0.0f;
}

// s[c] = Σ_d a[d] · bt[d*BK + c] for all BK columns of a transposed tile.
DD2_AI void dot_row(float* __restrict s, const float* __restrict a, const float* __restrict bt, int64_t D) {
    float acc[BK];
    for (int c = 0; c < BK; ++c) acc[c] = 0.0f;
    for (int64_t d = 0; d < D; ++d) {
        const float ad = a[d];
        const float* b = bt + d * BK;
        for (int c = 0; c < BK; ++c) acc[c] += ad * b[c];
    }
    for (int c = 0; c < BK; ++c) s[c] = acc[c];
}

// Sets s[c] = -inf where key j0 + c is hidden from query i (on partial tiles) and on padding c >= nk.
DD2_AI void mask_row(const Plan& p, float* __restrict s, int64_t i, int64_t j0, int64_t nk, Tile kind) {
    if (kind == kPartial) {
        if (p.s.level_q) {
            const int32_t li = p.s.level_q[i];
            const int32_t* lk = p.s.level_k + j0;
            for (int64_t c = 0; c < nk; ++c) s[c] = lk[c] > li ? kNegInf : s[c];
        } else {
            const int64_t last = i + p.off - j0;   // last visible column
            for (int64_t c = 0; c < BK; ++c) s[c] = c > last ? kNegInf : s[c];
        }
    }
    for (int64_t c = nk; c < BK; ++c) s[c] = kNegInf;
}

DD2_AI float max_row(const float* __restrict s) {
    float part[16];
    for (int x = 0; x < 16; ++x) part[x] = s[x];
    for (int c = 16; c < BK; c += 16)
        for (int x = 0; x < 16; ++x) part[x] = s[c + x] > part[x] ? s[c + x] : part[x];
    float m = part[0];
    for (int x = 1; x < 16; ++x) m = part[x] > m ? part[x] : m;
    return m;
}

// p[c] = exp(s[c] - m) for all BK columns; returns Σ p.
DD2_AI float exp_row(float* __restrict p, const float* __restrict s, float m) {
    for (int c = 0; c < BK; ++c) p[c] = exp_approx(s[c] - m);
    float part[16];
    for (int x = 0; x < 16; ++x) part[x] = p[x];
    for (int c = 16; c < BK; c += 16)
        for (int x = 0; x < 16; ++x) part[x] += p[c + x];
    float sum = 0.0f;
    for (int x = 0; x < 16; ++x) sum += part[x];
    return sum;
}

// a[0..D) += Σ_{i<n} coef[i*cs] · rows[i*D .. i*D+D), in increasing i for every element (so every
// caller adds in the same order), skipping zero coefficients. W columns are held in registers.
template <int W>
DD2_AI void acc_rows_w(float* __restrict a, const float* __restrict coef, int64_t cs,
                       const float* __restrict rows, int64_t n, int64_t D) {
    for (int64_t d0 = 0; d0 < D; d0 += W) {
        float t[W];
        for (int x = 0; x < W; ++x) t[x] = a[d0 + x];
        for (int64_t i = 0; i < n; ++i) {
            const float ci = coef[i * cs];
            if (ci == 0.0f) continue;
            const float* r = rows + i * D + d0;
            for (int x = 0; x < W; ++x) t[x] += ci * r[x];
        }
        for (int x = 0; x < W; ++x) a[d0 + x] = t[x];
    }
}

DD2_AI void acc_rows(float* __restrict a, const float* __restrict coef, int64_t cs, const float* __restrict rows,
                     int64_t n, int64_t D) {
    if (D % 64 == 0) return acc_rows_w<64>(a, coef, cs, rows, n, D);
    if (D % 32 == 0) return acc_rows_w<32>(a, coef, cs, rows, n, D);
    if (D % 16 == 0) return acc_rows_w<16>(a, coef, cs, rows, n, D);
    if (D % 8 == 0) return acc_rows_w<8>(a, coef, cs, rows, n, D);
    for (int64_t i = 0; i < n; ++i) {
        const float ci = coef[i * cs];
        if (ci == 0.0f) continue;
        const float* r = rows + i * D;
        for (int64_t d = 0; d < D; ++d) a[d] += ci * r[d];
    }
}

// ------------------------------------------------------------------------------------------ forward

struct FwdCtx {
    const Plan* p;
    float *o, *lse;
    const float *q, *kt, *v;   // kt: every key tile transposed, (BH, nkt, D, BK)
};

// Units u in [ub, ue): u = bh * nqb + query block.
DD2_AI void fwd_range(const FwdCtx& c, int64_t ub, int64_t ue) {
    const Plan& p = *c.p;
    const int64_t D = p.s.D, Tq = p.s.Tq, Tk = p.s.Tk;
    std::vector<float> buf(2 * BQ * D + 2 * BK + 2 * BQ);
    float* qs = buf.data();        // BQ x D, q · scale
    float* acc = qs + BQ * D;      // BQ x D, unnormalised output
    float* s = acc + BQ * D;       // BK scores of one row
    float* pr = s + BK;            // BK probabilities (relative to the running max)
    float* m = pr + BK;            // BQ running maxima
    float* l = m + BQ;             // BQ running sums
    for (int64_t u = ub; u < ue; ++u) {
        const int64_t bh = u / p.nqb, qb = u % p.nqb;
        const int64_t i0 = qb * BQ, nq = std::min(BQ, Tq - i0);
        const float* qrows = c.q + (bh * Tq + i0) * D;
        for (int64_t x = 0; x < nq * D; ++x) {
            qs[x] = qrows[x] * p.s.scale;
            acc[x] = 0.0f;
        }
        for (int64_t r = 0; r < nq; ++r) {
            m[r] = kNegInf;
            l[r] = 0.0f;
        }
        for (int64_t t = 0; t < p.nkt; ++t) {
            const Tile kind = p.classify(qb, t);
            if (kind == kSkip) continue;
            const int64_t j0 = t * BK, nk = std::min(BK, Tk - j0);
            const float* vrows = c.v + (bh * Tk + j0) * D;
            const float* kt = c.kt + (bh * p.nkt + t) * D * BK;
            for (int64_t r = 0; r < nq; ++r) {
                dot_row(s, qs + r * D, kt, D);
                mask_row(p, s, i0 + r, j0, nk, kind);
                const float mnew = std::max(m[r], max_row(s));
                if (mnew == kNegInf) continue;                // no visible key for this row yet
                const float alpha = std::exp(m[r] - mnew);    // 0 on the row's first visible tile
                const float sum = exp_row(pr, s, mnew);
                l[r] = l[r] * alpha + sum;
                m[r] = mnew;
                float* a = acc + r * D;
                if (alpha != 1.0f)
                    for (int64_t d = 0; d < D; ++d) a[d] *= alpha;
                acc_rows(a, pr, 1, vrows, nk, D);
            }
        }
        float* orows = c.o + (bh * Tq + i0) * D;
        float* lrow = c.lse + bh * Tq + i0;
        for (int64_t r = 0; r < nq; ++r) {
            const bool any = l[r] > 0.0f;   // l >= 1 once a key was visible (its own term is exp(0))
            for (int64_t d = 0; d < D; ++d) orows[r * D + d] = any ? acc[r * D + d] / l[r] : 0.0f;
            lrow[r] = any ? m[r] + std::log(l[r]) : kNegInf;
        }
    }
}

// ------------------------------------------------------------------------------------------ backward

struct BwdCtx {
    const Plan* p;
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v, *lse, *di;
    const float *kt, *vt;   // every key / value tile transposed, (BH, nkt, D, BK)
};

struct BwdScratch {
    std::vector<float> buf;
    float *qs, *P, *dS, *tmp;
    explicit BwdScratch(int64_t D) : buf(BQ * D + 2 * BQ * BK + BK) {
        qs = buf.data();       // BQ x D, q · scale
        P = qs + BQ * D;       // BQ x BK probabilities
        dS = P + BQ * BK;      // BQ x BK, dL/d(scaled score)
        tmp = dS + BQ * BK;    // BK
    }
};

// P and dS = P ⊙ (dP - Di) for query block qb of head bh against key tile t. Fills w.qs with the
// block's scaled queries. Returns the number of rows nq.
DD2_AI int64_t tile_grads(const BwdCtx& c, BwdScratch& w, int64_t bh, int64_t qb, int64_t t, Tile kind) {
    const Plan& p = *c.p;
    const int64_t D = p.s.D, Tq = p.s.Tq;
    const int64_t i0 = qb * BQ, nq = std::min(BQ, Tq - i0);
    const int64_t j0 = t * BK, nk = std::min(BK, p.s.Tk - j0);
    const float* kt = c.kt + (bh * p.nkt + t) * D * BK;
    const float* vt = c.vt + (bh * p.nkt + t) * D * BK;
    const float* qrows = c.q + (bh * Tq + i0) * D;
    const float* dorows = c.dout + (bh * Tq + i0) * D;
    for (int64_t x = 0; x < nq * D; ++x) w.qs[x] = qrows[x] * p.s.scale;
    for (int64_t r = 0; r < nq; ++r) {
        float* pr = w.P + r * BK;
        float* dr = w.dS + r * BK;
        const float L = c.lse[bh * Tq + i0 + r];
        if (L == kNegInf) {   // fully masked row: no probability mass, no gradient
            for (int64_t x = 0; x < BK; ++x) pr[x] = dr[x] = 0.0f;
            continue;
        }
        dot_row(w.tmp, w.qs + r * D, kt, D);
        mask_row(p, w.tmp, i0 + r, j0, nk, kind);
        for (int x = 0; x < BK; ++x) pr[x] = exp_approx(w.tmp[x] - L);
        dot_row(w.tmp, dorows + r * D, vt, D);
        const float di = c.di[bh * Tq + i0 + r];
        for (int x = 0; x < BK; ++x) dr[x] = pr[x] * (w.tmp[x] - di);
    }
    return nq;
}

// Key tile t of head bh against every query block: dk, dv of the tile (and, with_dq, the unscaled
// dS·K contribution to dq).
DD2_AI void kv_tile(const BwdCtx& c, BwdScratch& w, int64_t bh, int64_t t, bool with_dq) {
    const Plan& p = *c.p;
    const int64_t D = p.s.D, Tq = p.s.Tq, Tk = p.s.Tk;
    const int64_t j0 = t * BK, nk = std::min(BK, Tk - j0);
    const float* krows = c.k + (bh * Tk + j0) * D;
    float* dkrows = c.dk + (bh * Tk + j0) * D;
    float* dvrows = c.dv + (bh * Tk + j0) * D;
    for (int64_t qb = 0; qb < p.nqb; ++qb) {
        const Tile kind = p.classify(qb, t);
        if (kind == kSkip) continue;
        const int64_t nq = tile_grads(c, w, bh, qb, t, kind);
        const float* dorows = c.dout + (bh * Tq + qb * BQ) * D;
        for (int64_t x = 0; x < nk; ++x) {
            acc_rows(dvrows + x * D, w.P + x, BK, dorows, nq, D);
            acc_rows(dkrows + x * D, w.dS + x, BK, w.qs, nq, D);   // qs carries the scale
        }
        if (with_dq) {
            float* dqrows = c.dq + (bh * Tq + qb * BQ) * D;
            for (int64_t r = 0; r < nq; ++r) acc_rows(dqrows + r * D, w.dS + r * BK, 1, krows, nk, D);
        }
    }
}

DD2_AI void scale_rows(float* x, int64_t n, float s) {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

// One head per unit: every gradient of head bh (used when there are enough heads to share out).
DD2_AI void bwd_heads(const BwdCtx& c, int64_t ub, int64_t ue) {
    const Plan& p = *c.p;
    BwdScratch w(p.s.D);
    for (int64_t bh = ub; bh < ue; ++bh) {
        for (int64_t t = 0; t < p.nkt; ++t) kv_tile(c, w, bh, t, true);
        scale_rows(c.dq + bh * p.s.Tq * p.s.D, p.s.Tq * p.s.D, p.s.scale);
    }
}

// Units (bh, key tile): dk and dv only.
DD2_AI void bwd_kv(const BwdCtx& c, int64_t ub, int64_t ue) {
    BwdScratch w(c.p->s.D);
    for (int64_t u = ub; u < ue; ++u) kv_tile(c, w, u / c.p->nkt, u % c.p->nkt, false);
}

// Units (bh, query block): dq only, visiting key tiles in the same order (and adding in the same order)
// as kv_tile does, so both schedules give bit-identical dq.
DD2_AI void bwd_q(const BwdCtx& c, int64_t ub, int64_t ue) {
    const Plan& p = *c.p;
    const int64_t D = p.s.D, Tq = p.s.Tq, Tk = p.s.Tk;
    BwdScratch w(D);
    for (int64_t u = ub; u < ue; ++u) {
        const int64_t bh = u / p.nqb, qb = u % p.nqb;
        float* dqrows = c.dq + (bh * Tq + qb * BQ) * D;
        int64_t nq = std::min(BQ, Tq - qb * BQ);
        for (int64_t t = 0; t < p.nkt; ++t) {
            const Tile kind = p.classify(qb, t);
            if (kind == kSkip) continue;
            const int64_t j0 = t * BK, nk = std::min(BK, Tk - j0);
            const float* krows = c.k + (bh * Tk + j0) * D;
            tile_grads(c, w, bh, qb, t, kind);
            for (int64_t r = 0; r < nq; ++r) acc_rows(dqrows + r * D, w.dS + r * BK, 1, krows, nk, D);
        }
        scale_rows(dqrows, nq * D, p.s.scale);
    }
}

// ------------------------------------------------------------------------------------------ dispatch

using FwdFn = void (*)(const FwdCtx&, int64_t, int64_t);
using BwdFn = void (*)(const BwdCtx&, int64_t, int64_t);
struct Kernels {
    const char* name;
    FwdFn fwd;
    BwdFn heads, kv, q;
};

#define DD2_ATTENTION_VARIANT(NAME, LABEL, ATTR)                                                     \
    ATTR void fwd_##NAME(const FwdCtx& c, int64_t b, int64_t e) { fwd_range(c, b, e); }              \
    ATTR void heads_##NAME(const BwdCtx& c, int64_t b, int64_t e) { bwd_heads(c, b, e); }            \
    ATTR void kv_##NAME(const BwdCtx& c, int64_t b, int64_t e) { bwd_kv(c, b, e); }                  \
    ATTR void q_##NAME(const BwdCtx& c, int64_t b, int64_t e) { bwd_q(c, b, e); }                    \
    const Kernels k_##NAME{LABEL, fwd_##NAME, heads_##NAME, kv_##NAME, q_##NAME};

DD2_ATTENTION_VARIANT(avx512, "avx512f", __attribute__((target("avx512f"))))
DD2_ATTENTION_VARIANT(avx2, "avx2+fma", __attribute__((target("avx2,fma"))))
DD2_ATTENTION_VARIANT(base, "base", )

// Widest supported ISA; DD2_ATTENTION_ISA=base|avx2|avx512 narrows it (tests, benchmarks).
const Kernels& kernels() {
    static const Kernels* picked = [] {
        __builtin_cpu_init();
        const bool has512 = __builtin_cpu_supports("avx512f");
        const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        const char* env = std::getenv("DD2_ATTENTION_ISA");
        const std::string want = env ? env : "";
        if (want == "base") return &k_base;
        if (want == "avx2" && has2) return &k_avx2;
        return has512 ? &k_avx512 : has2 ? &k_avx2 : &k_base;
    }();
    return *picked;
}

// Every key tile of x (BH, Tk, D) transposed and zero-padded: (BH, nkt, D, BK). Done once per call so
// that query blocks share the transposes.
std::unique_ptr<float[]> transpose_tiles(const float* x, const Plan& p) {
    const int64_t D = p.s.D, Tk = p.s.Tk;
    std::unique_ptr<float[]> out(new float[p.s.BH * p.nkt * D * BK]);
    float* dst = out.get();
    parallel_for(p.s.BH * p.nkt, 4, [=, &p](int64_t b, int64_t e) {
        for (int64_t u = b; u < e; ++u) {
            const int64_t bh = u / p.nkt, t = u % p.nkt, j0 = t * BK;
            transpose_tile(dst + u * D * BK, x + (bh * Tk + j0) * D, std::min(BK, Tk - j0), D);
        }
    });
    return out;
}

void zero_parallel(float* x, int64_t n) {
    parallel_for(n, 1 << 16, [=](int64_t b, int64_t e) { std::memset(x + b, 0, sizeof(float) * (e - b)); });
}

}  // namespace

const char* attention_isa() { return kernels().name; }

void attention_forward_f32_cpu(float* o, float* lse, const float* q, const float* k, const float* v,
                               const AttentionShape& s) {
    if (s.BH == 0 || s.Tq == 0) return;
    const Plan p(s);
    const auto kt = transpose_tiles(k, p);
    const FwdCtx c{&p, o, lse, q, kt.get(), v};
    const FwdFn fn = kernels().fwd;
    parallel_for(s.BH * p.nqb, 1, [&](int64_t b, int64_t e) { fn(c, b, e); });
}

void attention_backward_f32_cpu(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                const float* k, const float* v, const float* o, const float* lse,
                                const AttentionShape& s) {
    zero_parallel(dq, s.BH * s.Tq * s.D);
    zero_parallel(dk, s.BH * s.Tk * s.D);
    zero_parallel(dv, s.BH * s.Tk * s.D);
    if (s.BH == 0 || s.Tq == 0 || s.Tk == 0) return;
    const Plan p(s);
    // Di = dout_i · o_i = Σ_j P_ij dP_ij, the row term of the softmax backward (double accumulation).
    std::vector<float> di(s.BH * s.Tq);
    parallel_for(s.BH * s.Tq, 256, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            double acc = 0.0;
            for (int64_t d = 0; d < s.D; ++d) acc += (double)dout[r * s.D + d] * o[r * s.D + d];
            di[r] = lse[r] == kNegInf ? 0.0f : (float)acc;
        }
    });
    const auto kt = transpose_tiles(k, p), vt = transpose_tiles(v, p);
    const BwdCtx c{&p, dq, dk, dv, dout, q, k, v, lse, di.data(), kt.get(), vt.get()};
    const Kernels& kn = kernels();
    // Enough heads: one unit per head computes everything once. Otherwise dk/dv over (head, key tile)
    // and dq over (head, query block), which recomputes P and dS once more but keeps both cores busy.
    // Both schedules add every gradient element's terms in the same order, so they agree bit for bit.
    const int nt = num_threads();
    if (nt == 1 || s.BH >= 4 * nt) {
        parallel_for(s.BH, 1, [&](int64_t b, int64_t e) { kn.heads(c, b, e); });
    } else {
        parallel_for(s.BH * p.nkt, 1, [&](int64_t b, int64_t e) { kn.kv(c, b, e); });
        parallel_for(s.BH * p.nqb, 1, [&](int64_t b, int64_t e) { kn.q(c, b, e); });
    }
}

}  // namespace dd2
