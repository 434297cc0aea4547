// Max / average pooling and bilinear resizing, NCHW float32 on the CPU (contracts in dd2/cpu/pool.h).
// Work is split over planes (or output rows); pooling gradients are gathered per input element, the
// resize gradient is scattered within a plane by one task, so there are no races and no atomics.
// Tested by test/kernels/pool.test.ts against the float64 references in test/ref/pool.ts.
#include "dd2/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/threadpool.h"

namespace dd2 {
namespace {

constexpr int64_t kGrain = 1 << 14;   // elements of work per parallel task, at least

int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work_per_item)); }

// Outputs o (along one axis) whose window [o*s - p, o*s - p + k) contains input i: [lo, hi], maybe empty.
inline void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo, int64_t& hi) {
    const int64_t a = i + p - k + 1;   // o*s >= a
    lo = a <= 0 ? 0 : (a + s - 1) / s;
    hi = std::min(out - 1, (i + p) / s);
}

// PyTorch's avg_pool2d divisor for the window at (oh, ow) (ceil_mode = False).
inline int64_t avg_divisor(int64_t oh, int64_t ow, const Pool2dGeom& g, bool include_pad) {
    int64_t hs = oh * g.SH - g.PH, ws = ow * g.SW - g.PW;
    int64_t he = std::min(hs + g.KH, g.H + g.PH), we = std::min(ws + g.KW, g.W + g.PW);
    if (include_pad) return (he - hs) * (we - ws);
    hs = std::max<int64_t>(hs, 0);
    ws = std::max<int64_t>(ws, 0);
    he = std::min(he, g.H);
    we = std::min(we, g.W);
    return (he - hs) * (we - ws);
}

struct Lerp {
    int64_t i0, i1;
    float w0, w1;
};

// Interpolation taps of output o along an axis of input size n, output size m (see pool.h).
inline Lerp lerp_at(int64_t o, int64_t n, int64_t m, int mode) {
    const float scale = (float)n / (float)m;
    float src = mode == kResizeHalfPixel ? scale * ((float)o + 0.5f) - 0.5f : scale * (float)o;
    if (src < 0.0f) src = 0.0f;
    const int64_t i0 = std::min<int64_t>((int64_t)src, n - 1);
    const float w1 = src - (float)i0;
    return {i0, std::min<int64_t>(i0 + 1, n - 1), 1.0f - w1, w1};
}

std::vector<Lerp> lerp_table(int64_t n, int64_t m, int mode) {
    std::vector<Lerp> t((size_t)m);
    for (int64_t o = 0; o < m; ++o) t[(size_t)o] = lerp_at(o, n, m, mode);
    return t;
}

}  // namespace

void max_pool2d_forward_f32_cpu(float* y, int32_t* idx, const float* x, const Pool2dGeom& g) {
    const int64_t OH = g.OH(), OW = g.OW();
    if (g.NC * OH * OW == 0) return;
    parallel_for(g.NC * OH, grain_for(OW * g.KH * g.KW), [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t nc = r / OH, oh = r % OH;
            const float* plane = x + nc * g.H * g.W;
            const int64_t hs = std::max<int64_t>(oh * g.SH - g.PH, 0), he = std::min(oh * g.SH - g.PH + g.KH, g.H);
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t ws = std::max<int64_t>(ow * g.SW - g.PW, 0);
                const int64_t we = std::min(ow * g.SW - g.PW + g.KW, g.W);
                float best = -std::numeric_limits<float>::infinity();
                int64_t arg = hs * g.W + ws;
                for (int64_t h = hs; h < he; ++h) {
                    for (int64_t w = ws; w < we; ++w) {
                        const float v = plane[h * g.W + w];
                        if (v > best || std::isnan(v)) {
                            best = v;
                            arg = h * g.W + w;
                        }
                    }
                }
                y[r * OW + ow] = best;
                idx[r * OW + ow] = (int32_t)arg;
            }
        }
    });
}

void max_pool2d_backward_f32_cpu(float* dx, const float* dy, const int32_t* idx, const Pool2dGeom& g) {
    const int64_t OH = g.OH(), OW = g.OW();
    if (g.NC * g.H * g.W == 0) return;
    parallel_for(g.NC * g.H, grain_for(g.W * g.KH * g.KW), [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t nc = r / g.H, h = r % g.H;
            const float* dyp = dy + nc * OH * OW;
            const int32_t* ip = idx + nc * OH * OW;
            int64_t ohl, ohh;
            covering(h, g.KH, g.SH, g.PH, OH, ohl, ohh);
            for (int64_t w = 0; w < g.W; ++w) {
                int64_t owl, owh;
                covering(w, g.KW, g.SW, g.PW, OW, owl, owh);
                const int32_t me = (int32_t)(h * g.W + w);
                float acc = 0.0f;
                for (int64_t oh = ohl; oh <= ohh; ++oh)
                    for (int64_t ow = owl; ow <= owh; ++ow)
                        if (ip[oh * OW + ow] == me) acc += dyp[oh * OW + ow];
                dx[r * g.W + w] = acc;
            }
        }
    });
}

void avg_pool2d_forward_f32_cpu(float* y, const float* x, const Pool2dGeom& g, bool count_include_pad) {
    const int64_t OH = g.OH(), OW = g.OW();
    if (g.NC * OH * OW == 0) return;
    parallel_for(g.NC * OH, grain_for(OW * g.KH * g.KW), [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t nc = r / OH, oh = r % OH;
            const float* plane = x + nc * g.H * g.W;
            const int64_t hs = std::max<int64_t>(oh * g.SH - g.PH, 0), he = std::min(oh * g.SH - g.PH + g.KH, g.H);
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t ws = std::max<int64_t>(ow * g.SW - g.PW, 0);
                const int64_t we = std::min(ow * g.SW - g.PW + g.KW, g.W);
                float s = 0.0f;
                for (int64_t h = hs; h < he; ++h)
                    for (int64_t w = ws; w < we; ++w) s += plane[h * g.W + w];
                y[r * OW + ow] = s / (float)avg_divisor(oh, ow, g, count_include_pad);
            }
        }
    });
}

void avg_pool2d_backward_f32_cpu(float* dx, const float* dy, const Pool2dGeom& g, bool count_include_pad) {
    const int64_t OH = g.OH(), OW = g.OW();
    if (g.NC * g.H * g.W == 0) return;
    parallel_for(g.NC * g.H, grain_for(g.W * g.KH * g.KW), [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t nc = r / g.H, h = r % g.H;
            const float* dyp = dy + nc * OH * OW;
            int64_t ohl, ohh;
            covering(h, g.KH, g.SH, g.PH, OH, ohl, ohh);
            for (int64_t w = 0; w < g.W; ++w) {
                int64_t owl, owh;
                covering(w, g.KW, g.SW, g.PW, OW, owl, owh);
                float acc = 0.0f;
                for (int64_t oh = ohl; oh <= ohh; ++oh)
                    for (int64_t ow = owl; ow <= owh; ++ow)
                        acc += dyp[oh * OW + ow] / (float)avg_divisor(oh, ow, g, count_include_pad);
                dx[r * g.W + w] = acc;
            }
        }
    });
}

void resize_bilinear_forward_f32_cpu(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                     int64_t OW, int mode) {
    if (NC * OH * OW == 0) return;
    const std::vector<Lerp> rows = lerp_table(H, OH, mode), cols = lerp_table(W, OW, mode);
    parallel_for(NC * OH, grain_for(OW * 4), [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t nc = r / OH, oh = r % OH;
            const Lerp& a = rows[(size_t)oh];
            const float* r0 = x + (nc * H + a.i0) * W;
            const float* r1 = x + (nc * H + a.i1) * W;
            float* out = y + r * OW;
            for (int64_t ow = 0; ow < OW; ++ow) {
                const Lerp& b = cols[(size_t)ow];
                out[ow] = a.w0 * (b.w0 * r0[b.i0] + b.w1 * r0[b.i1]) + a.w1 * (b.w0 * r1[b.i0] + b.w1 * r1[b.i1]);
            }
        }
    });
}

void resize_bilinear_backward_f32_cpu(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                      int64_t OW, int mode) {
    if (NC * H * W == 0) return;
    const std::vector<Lerp> rows = lerp_table(H, OH, mode), cols = lerp_table(W, OW, mode);
    // One task per plane scatters its OH x OW gradient into its own H x W plane.
    parallel_for(NC, grain_for(OH * OW * 4 + H * W), [&](int64_t pb, int64_t pe) {
        for (int64_t nc = pb; nc < pe; ++nc) {
            float* d = dx + nc * H * W;
            std::memset(d, 0, sizeof(float) * H * W);
            const float* g = dy + nc * OH * OW;
            for (int64_t oh = 0; oh < OH; ++oh) {
                const Lerp& a = rows[(size_t)oh];
                float* d0 = d + a.i0 * W;
                float* d1 = d + a.i1 * W;
                for (int64_t ow = 0; ow < OW; ++ow) {
                    const Lerp& b = cols[(size_t)ow];
                    const float v = g[oh * OW + ow];
                    d0[b.i0] += a.w0 * b.w0 * v;
                    d0[b.i1] += a.w0 * b.w1 * v;
                    d1[b.i0] += a.w1 * b.w0 * v;
                    d1[b.i1] += a.w1 * b.w1 * v;
                }
            }
        }
    });
}

}  // namespace dd2
