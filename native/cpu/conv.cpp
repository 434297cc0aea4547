// Convolution as im2col + GEMM, and nearest upsampling. A chunk of nb images is unrolled side by side
// into one "wide" column matrix col (Cin*KH*KW, nb*OH*OW), so each chunk is a single large GEMM:
//   forward    Y' (Cout, nb*OHW)  = W (Cout, CKK) . col        then Y' is scattered to y (nb, Cout, OHW)
//   grad input col (CKK, nb*OHW)  = W^T . dY'                  then col2im adds columns back into dx
//   grad w     dW (Cout, CKK)    += dY' . col^T                 accumulated over chunks (beta = 1)
// dY' is dy of the chunk regrouped as (Cout, nb*OHW). With one image per chunk y / dy are used in place.
// The chunk size keeps col + Y' under DD2_CONV_COL_BYTES (default 64 MB); 1x1 stride-1 unpadded
// convolutions skip im2col (x itself is the column matrix). Tested by test/kernels/conv.test.ts.
#include "dd2/cpu/conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/threadpool.h"
#include "dd2/cpu/gemm.h"

namespace dd2 {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements of work per parallel task, at least

int64_t col_budget_bytes() {
    // Read per call so tests can shrink it to exercise the chunk boundaries.
    if (const char* env = std::getenv("DD2_CONV_COL_BYTES")) {
        long long v = std::atoll(env);
        if (v > 0) return (int64_t)v;
    }
    return int64_t(64) << 20;
}

// Scratch buffer, left uninitialised (every element is written before it is read).
std::unique_ptr<float[]> scratch(int64_t n) {
    return std::unique_ptr<float[]>(new float[(size_t)std::max<int64_t>(n, 1)]);
}

inline int64_t ceil_div_nonneg(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// Output columns ow whose input column ow*stride - pad + kw lies in [0, W): [lo, hi).
inline void valid_range(int64_t kw, int64_t W, int64_t OW, int64_t stride, int64_t pad, int64_t& lo, int64_t& hi) {
    lo = std::min(OW, ceil_div_nonneg(pad - kw, stride));
    hi = std::min(OW, ceil_div_nonneg(W + pad - kw, stride));
    hi = std::max(lo, hi);
}

inline bool is_pointwise(const Conv2dGeom& g) {
    return g.KH == 1 && g.KW == 1 && g.stride == 1 && g.padH == 0 && g.padW == 0;
}

// Images per chunk: col (CKK x OHW per image) plus the staged output (Cout x OHW) within the budget.
int64_t chunk_images(const Conv2dGeom& g) {
    const int64_t per_image = (g.Cin * g.KH * g.KW + g.Cout) * g.OH() * g.OW() * (int64_t)sizeof(float);
    const int64_t nb = per_image > 0 ? col_budget_bytes() / per_image : g.N;
    return std::max<int64_t>(1, std::min(g.N, nb));
}

// col[q, b*OHW + oh*OW + ow] = x[b, c, oh*s - ph + kh, ow*s - pw + kw] (0 outside), q = (c, kh, kw);
// x points at the chunk's first image, ld is the row length of col (nb * OHW).
void im2col(float* col, int64_t ld, const float* x, int64_t nb, const Conv2dGeom& g) {
    const int64_t OH = g.OH(), OW = g.OW(), OHW = OH * OW, KK = g.KH * g.KW, CKK = g.Cin * KK;
    const int64_t H = g.H, W = g.W, s = g.stride, ph = g.padH, pw = g.padW;
    parallel_for(nb * CKK, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, OHW)), [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t b = r / CKK, q = r % CKK;
            const int64_t c = q / KK, kh = (q / g.KW) % g.KH, kw = q % g.KW;
            const float* plane = x + (b * g.Cin + c) * H * W;
            float* dst = col + q * ld + b * OHW;
            int64_t lo, hi;
            valid_range(kw, W, OW, s, pw, lo, hi);
            for (int64_t oh = 0; oh < OH; ++oh) {
                float* d = dst + oh * OW;
                const int64_t ih = oh * s - ph + kh;
                if (ih < 0 || ih >= H) {
                    std::memset(d, 0, sizeof(float) * OW);
                    continue;
                }
                const int64_t base = ih * W - pw + kw;  // plane[base + ow*s]: input column ow*s - pw + kw
                for (int64_t ow = 0; ow < lo; ++ow) d[ow] = 0.0f;
                if (s == 1) {
                    for (int64_t ow = lo; ow < hi; ++ow) d[ow] = plane[base + ow];
                } else {
                    for (int64_t ow = lo; ow < hi; ++ow) d[ow] = plane[base + ow * s];
                }
                for (int64_t ow = hi; ow < OW; ++ow) d[ow] = 0.0f;
            }
        }
    });
}

// The adjoint of im2col: dx[b, c] (overwritten) = sum over (kh, kw, oh, ow) of col entries mapping there.
// One task per (image, channel) plane, so tasks never write the same element.
void col2im(float* dx, const float* col, int64_t ld, int64_t nb, const Conv2dGeom& g) {
    const int64_t OH = g.OH(), OW = g.OW(), OHW = OH * OW;
    const int64_t H = g.H, W = g.W, s = g.stride, ph = g.padH, pw = g.padW;
    const int64_t work = g.KH * g.KW * OHW + H * W;
    parallel_for(nb * g.Cin, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work)), [&](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
            const int64_t b = t / g.Cin, c = t % g.Cin;
            float* plane = dx + t * H * W;
            std::memset(plane, 0, sizeof(float) * H * W);
            for (int64_t kh = 0; kh < g.KH; ++kh) {
                for (int64_t kw = 0; kw < g.KW; ++kw) {
                    const float* src = col + ((c * g.KH + kh) * g.KW + kw) * ld + b * OHW;
                    int64_t lo, hi;
                    valid_range(kw, W, OW, s, pw, lo, hi);
                    for (int64_t oh = 0; oh < OH; ++oh) {
                        const int64_t ih = oh * s - ph + kh;
                        if (ih < 0 || ih >= H) continue;
                        const int64_t base = ih * W - pw + kw;
                        const float* sr = src + oh * OW;
                        if (s == 1) {
                            for (int64_t ow = lo; ow < hi; ++ow) plane[base + ow] += sr[ow];
                        } else {
                            for (int64_t ow = lo; ow < hi; ++ow) plane[base + ow * s] += sr[ow];
                        }
                    }
                }
            }
        }
    });
}

// Between (nb, C, L) images and the wide (C, nb*L) layout: rows of L floats, one task per (b, c).
void to_wide(float* wide, const float* img, int64_t nb, int64_t C, int64_t L) {
    parallel_for(nb * C, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, L)), [&](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
            const int64_t b = t / C, c = t % C;
            std::memcpy(wide + c * nb * L + b * L, img + t * L, sizeof(float) * L);
        }
    });
}

void from_wide(float* img, const float* wide, int64_t nb, int64_t C, int64_t L) {
    parallel_for(nb * C, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, L)), [&](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
            const int64_t b = t / C, c = t % C;
            std::memcpy(img + t * L, wide + c * nb * L + b * L, sizeof(float) * L);
        }
    });
}

void add_bias(float* y, const float* bias, int64_t N, int64_t C, int64_t L) {
    parallel_for(N * C, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, L)), [&](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
            const float v = bias[t % C];
            float* row = y + t * L;
            for (int64_t i = 0; i < L; ++i) row[i] += v;
        }
    });
}

}  // namespace

void conv2d_forward_f32_cpu(float* y, const float* x, const float* w, const float* b, const Conv2dGeom& g) {
    const int64_t OHW = g.OH() * g.OW(), CKK = g.Cin * g.KH * g.KW, HW = g.H * g.W;
    if (g.N == 0 || g.Cout == 0 || OHW == 0) return;
    if (is_pointwise(g)) {
        // y[n] (Cout, HW) = W (Cout, Cin) . x[n] (Cin, HW), one batched GEMM with W broadcast.
        gemm_f32_cpu(y, w, x, g.N, g.Cout, HW, g.Cin, false, false, 0, g.Cin * HW, g.Cout * HW, 1.0f, 0.0f);
    } else {
        const int64_t nb = chunk_images(g);
        auto col = scratch(CKK * nb * OHW);
        auto stage = scratch(nb > 1 ? g.Cout * nb * OHW : 0);
        for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
            const int64_t cur = std::min(nb, g.N - n0), ld = cur * OHW;
            float* yc = y + n0 * g.Cout * OHW;
            im2col(col.get(), ld, x + n0 * g.Cin * HW, cur, g);
            float* out = cur == 1 ? yc : stage.get();
            gemm_f32_cpu(out, w, col.get(), 1, g.Cout, ld, CKK, false, false, 0, 0, 0, 1.0f, 0.0f);
            if (cur > 1) from_wide(yc, stage.get(), cur, g.Cout, OHW);
        }
    }
    if (b) add_bias(y, b, g.N, g.Cout, OHW);
}

void conv2d_backward_input_f32_cpu(float* dx, const float* dy, const float* w, const Conv2dGeom& g) {
    const int64_t OHW = g.OH() * g.OW(), CKK = g.Cin * g.KH * g.KW, HW = g.H * g.W;
    if (g.N == 0 || g.Cin == 0 || HW == 0) return;
    if (is_pointwise(g)) {
        // dx[n] (Cin, HW) = W^T . dy[n] (Cout, HW); W is stored (Cout, Cin).
        gemm_f32_cpu(dx, w, dy, g.N, g.Cin, HW, g.Cout, true, false, 0, g.Cout * HW, g.Cin * HW, 1.0f, 0.0f);
        return;
    }
    const int64_t nb = chunk_images(g);
    auto col = scratch(CKK * nb * OHW);
    auto stage = scratch(nb > 1 ? g.Cout * nb * OHW : 0);
    for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
        const int64_t cur = std::min(nb, g.N - n0), ld = cur * OHW;
        const float* dyc = dy + n0 * g.Cout * OHW;
        if (cur > 1) {
            to_wide(stage.get(), dyc, cur, g.Cout, OHW);
            dyc = stage.get();
        }
        gemm_f32_cpu(col.get(), w, dyc, 1, CKK, ld, g.Cout, true, false, 0, 0, 0, 1.0f, 0.0f);
        col2im(dx + n0 * g.Cin * HW, col.get(), ld, cur, g);
    }
}

void conv2d_backward_weight_f32_cpu(float* dw, float* db, const float* dy, const float* x, const Conv2dGeom& g) {
    const int64_t OHW = g.OH() * g.OW(), CKK = g.Cin * g.KH * g.KW, HW = g.H * g.W;
    if (db) {
        // Sum of N * OHW terms per channel, accumulated in double (it can be 10^5+ terms).
        const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, g.N * OHW));
        parallel_for(g.Cout, grain, [&](int64_t cb, int64_t ce) {
            for (int64_t co = cb; co < ce; ++co) {
                double s = 0.0;
                for (int64_t n = 0; n < g.N; ++n) {
                    const float* row = dy + (n * g.Cout + co) * OHW;
                    for (int64_t i = 0; i < OHW; ++i) s += row[i];
                }
                db[co] = (float)s;
            }
        });
    }
    if (g.Cout * CKK == 0) return;
    if (g.N == 0 || OHW == 0) {
        std::memset(dw, 0, sizeof(float) * g.Cout * CKK);
        return;
    }
    if (is_pointwise(g)) {
        // dW (Cout, Cin) = sum_n dy[n] (Cout, HW) . x[n]^T, accumulated image by image.
        for (int64_t n = 0; n < g.N; ++n) {
            gemm_f32_cpu(dw, dy + n * g.Cout * HW, x + n * g.Cin * HW, 1, g.Cout, g.Cin, HW, false, true, 0, 0, 0,
                         1.0f, n == 0 ? 0.0f : 1.0f);
        }
        return;
    }
    const int64_t nb = chunk_images(g);
    auto col = scratch(CKK * nb * OHW);
    auto stage = scratch(nb > 1 ? g.Cout * nb * OHW : 0);
    for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
        const int64_t cur = std::min(nb, g.N - n0), ld = cur * OHW;
        const float* dyc = dy + n0 * g.Cout * OHW;
        if (cur > 1) {
            to_wide(stage.get(), dyc, cur, g.Cout, OHW);
            dyc = stage.get();
        }
        im2col(col.get(), ld, x + n0 * g.Cin * HW, cur, g);
        gemm_f32_cpu(dw, dyc, col.get(), 1, g.Cout, CKK, ld, false, true, 0, 0, 0, 1.0f, n0 == 0 ? 0.0f : 1.0f);
    }
}

void upsample_nearest_forward_f32_cpu(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t f) {
    const int64_t Wf = W * f;
    if (Wf == 0) return;
    // Input row r = (nc, h) becomes output rows r*f .. r*f + f-1: build the first, copy it f-1 times.
    parallel_for(NC * H, std::max<int64_t>(1, kGrain / (Wf * f)), [=](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const float* src = x + r * W;
            float* dst = y + r * f * Wf;
            for (int64_t w = 0; w < W; ++w)
                for (int64_t j = 0; j < f; ++j) dst[w * f + j] = src[w];
            for (int64_t a = 1; a < f; ++a) std::memcpy(dst + a * Wf, dst, sizeof(float) * Wf);
        }
    });
}

void upsample_nearest_backward_f32_cpu(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t f) {
    const int64_t Wf = W * f;
    if (W == 0) return;
    parallel_for(NC * H, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, Wf * f)), [=](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            float* d = dx + r * W;
            for (int64_t w = 0; w < W; ++w) d[w] = 0.0f;
            for (int64_t a = 0; a < f; ++a) {
                const float* src = dy + (r * f + a) * Wf;
                for (int64_t w = 0; w < W; ++w)
                    for (int64_t j = 0; j < f; ++j) d[w] += src[w * f + j];
            }
        }
    });
}

}  // namespace dd2
