// Max / average pooling and bilinear resizing on the GPU, NCHW float32 (contracts in dd2/cpu/pool.h,
// same arithmetic as native/cpu/pool.cpp). One thread per output element forward; one thread per input
// element for every gradient (a gather over the outputs that read it), so there are no atomics and
// results are deterministic. Tested by test/kernels/pool.test.ts with DD2_DEFAULT_DEVICE=cuda.
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/pool.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;

// Pool2dGeom::OH() / OW() are host functions; the kernels use these copies.
__device__ inline int64_t out_h(const Pool2dGeom& g) { return (g.H + 2 * g.PH - g.KH) / g.SH + 1; }
__device__ inline int64_t out_w(const Pool2dGeom& g) { return (g.W + 2 * g.PW - g.KW) / g.SW + 1; }

// Outputs o whose window [o*s - p, o*s - p + k) contains input i: [lo, hi], maybe empty.
__device__ inline void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo, int64_t& hi) {
    const int64_t a = i + p - k + 1;
    lo = a <= 0 ? 0 : (a + s - 1) / s;
    hi = min(out - 1, (i + p) / s);
}

__device__ inline int64_t avg_divisor(int64_t oh, int64_t ow, const Pool2dGeom& g, bool include_pad) {
    int64_t hs = oh * g.SH - g.PH, ws = ow * g.SW - g.PW;
    int64_t he = min(hs + g.KH, g.H + g.PH), we = min(ws + g.KW, g.W + g.PW);
    if (include_pad) return (he - hs) * (we - ws);
    hs = max(hs, (int64_t)0);
    ws = max(ws, (int64_t)0);
    he = min(he, g.H);
    we = min(we, g.W);
    return (he - hs) * (we - ws);
}

struct Lerp {
    int64_t i0, i1;
    float w0, w1;
};

// Interpolation taps of output o along an axis of input size n, output size m (as lerp_at on the CPU).
__device__ inline Lerp lerp_at(int64_t o, int64_t n, int64_t m, int mode) {
    const float scale = (float)n / (float)m;
    float src = mode == kResizeHalfPixel ? scale * ((float)o + 0.5f) - 0.5f : scale * (float)o;
    if (src < 0.0f) src = 0.0f;
    const int64_t i0 = min((int64_t)src, n - 1);
    const float w1 = src - (float)i0;
    return {i0, min(i0 + 1, n - 1), 1.0f - w1, w1};
}

// A superset of the outputs whose taps reach input i: those with source coordinate in [i - 1, i + 1),
// widened by 2 on each side against float rounding (taps are recomputed exactly inside the loop).
__device__ inline void taps_range(int64_t i, int64_t n, int64_t m, int mode, int64_t& lo, int64_t& hi) {
    const double inv = (double)m / (double)n, off = mode == kResizeHalfPixel ? 0.5 : 0.0;
    lo = max((int64_t)0, (int64_t)floor(((double)i - 1.0 + off) * inv - off) - 2);
    hi = min(m - 1, (int64_t)ceil(((double)i + 1.0 + off) * inv - off) + 2);
}

// The weight with which output tap t reads input i (0 when it does not read it).
__device__ inline float tap_weight(const Lerp& t, int64_t i) {
    return (t.i0 == i ? t.w0 : 0.0f) + (t.i1 == i ? t.w1 : 0.0f);
}

__global__ void max_fwd_kernel(float* y, int32_t* idx, const float* x, Pool2dGeom g, int64_t total) {
    const int64_t OH = out_h(g), OW = out_w(g);
    DD2_GRID_LOOP(e, total) {
        const int64_t ow = e % OW, oh = (e / OW) % OH, nc = e / (OW * OH);
        const float* plane = x + nc * g.H * g.W;
        const int64_t hs = max(oh * g.SH - g.PH, (int64_t)0), he = min(oh * g.SH - g.PH + g.KH, g.H);
        const int64_t ws = max(ow * g.SW - g.PW, (int64_t)0), we = min(ow * g.SW - g.PW + g.KW, g.W);
        float best = -INFINITY;
        int64_t arg = hs * g.W + ws;
        for (int64_t h = hs; h < he; ++h) {
            for (int64_t w = ws; w < we; ++w) {
                const float v = plane[h * g.W + w];
                if (v > best || isnan(v)) {
                    best = v;
                    arg = h * g.W + w;
                }
            }
        }
        y[e] = best;
        idx[e] = (int32_t)arg;
    }
}

__global__ void max_bwd_kernel(float* dx, const float* dy, const int32_t* idx, Pool2dGeom g, int64_t total) {
    const int64_t OH = out_h(g), OW = out_w(g);
    DD2_GRID_LOOP(e, total) {
        const int64_t w = e % g.W, h = (e / g.W) % g.H, nc = e / (g.W * g.H);
        const float* dyp = dy + nc * OH * OW;
        const int32_t* ip = idx + nc * OH * OW;
        int64_t ohl, ohh, owl, owh;
        covering(h, g.KH, g.SH, g.PH, OH, ohl, ohh);
        covering(w, g.KW, g.SW, g.PW, OW, owl, owh);
        const int32_t me = (int32_t)(h * g.W + w);
        float acc = 0.0f;
        for (int64_t oh = ohl; oh <= ohh; ++oh)
            for (int64_t ow = owl; ow <= owh; ++ow)
                if (ip[oh * OW + ow] == me) acc += dyp[oh * OW + ow];
        dx[e] = acc;
    }
}

__global__ void avg_fwd_kernel(float* y, const float* x, Pool2dGeom g, bool include_pad, int64_t total) {
    const int64_t OH = out_h(g), OW = out_w(g);
    DD2_GRID_LOOP(e, total) {
        const int64_t ow = e % OW, oh = (e / OW) % OH, nc = e / (OW * OH);
        const float* plane = x + nc * g.H * g.W;
        const int64_t hs = max(oh * g.SH - g.PH, (int64_t)0), he = min(oh * g.SH - g.PH + g.KH, g.H);
        const int64_t ws = max(ow * g.SW - g.PW, (int64_t)0), we = min(ow * g.SW - g.PW + g.KW, g.W);
        float s = 0.0f;
        for (int64_t h = hs; h < he; ++h)
            for (int64_t w = ws; w < we; ++w) s += plane[h * g.W + w];
        y[e] = s / (float)avg_divisor(oh, ow, g, include_pad);
    }
}

__global__ void avg_bwd_kernel(float* dx, const float* dy, Pool2dGeom g, bool include_pad, int64_t total) {
    const int64_t OH = out_h(g), OW = out_w(g);
    DD2_GRID_LOOP(e, total) {
        const int64_t w = e % g.W, h = (e / g.W) % g.H, nc = e / (g.W * g.H);
        const float* dyp = dy + nc * OH * OW;
        int64_t ohl, ohh, owl, owh;
        covering(h, g.KH, g.SH, g.PH, OH, ohl, ohh);
        covering(w, g.KW, g.SW, g.PW, OW, owl, owh);
        float acc = 0.0f;
        for (int64_t oh = ohl; oh <= ohh; ++oh)
            for (int64_t ow = owl; ow <= owh; ++ow)
                acc += dyp[oh * OW + ow] / (float)avg_divisor(oh, ow, g, include_pad);
        dx[e] = acc;
    }
}

__global__ void resize_fwd_kernel(float* y, const float* x, int64_t H, int64_t W, int64_t OH, int64_t OW, int mode,
                                  int64_t total) {
    DD2_GRID_LOOP(e, total) {
        const int64_t ow = e % OW, oh = (e / OW) % OH, nc = e / (OW * OH);
        const Lerp a = lerp_at(oh, H, OH, mode), b = lerp_at(ow, W, OW, mode);
        const float* r0 = x + (nc * H + a.i0) * W;
        const float* r1 = x + (nc * H + a.i1) * W;
        y[e] = a.w0 * (b.w0 * r0[b.i0] + b.w1 * r0[b.i1]) + a.w1 * (b.w0 * r1[b.i0] + b.w1 * r1[b.i1]);
    }
}

__global__ void resize_bwd_kernel(float* dx, const float* dy, int64_t H, int64_t W, int64_t OH, int64_t OW, int mode,
                                  int64_t total) {
    DD2_GRID_LOOP(e, total) {
        const int64_t w = e % W, h = (e / W) % H, nc = e / (W * H);
        const float* g = dy + nc * OH * OW;
        int64_t ohl, ohh, owl, owh;
        taps_range(h, H, OH, mode, ohl, ohh);
        taps_range(w, W, OW, mode, owl, owh);
        float acc = 0.0f;
        for (int64_t oh = ohl; oh <= ohh; ++oh) {
            const float wh = tap_weight(lerp_at(oh, H, OH, mode), h);
            if (wh == 0.0f) continue;
            for (int64_t ow = owl; ow <= owh; ++ow) {
                const float ww = tap_weight(lerp_at(ow, W, OW, mode), w);
                if (ww != 0.0f) acc += wh * ww * g[oh * OW + ow];
            }
        }
        dx[e] = acc;
    }
}

}  // namespace

void max_pool2d_forward_f32_cuda(float* y, int32_t* idx, const float* x, const Pool2dGeom& g) {
    const int64_t total = g.NC * g.OH() * g.OW();
    if (total == 0) return;
    max_fwd_kernel<<<cuda::blocks_for(total, kThreads), kThreads, 0, cuda::stream()>>>(y, idx, x, g, total);
    cuda::check_launch("max_pool2d_forward");
}

void max_pool2d_backward_f32_cuda(float* dx, const float* dy, const int32_t* idx, const Pool2dGeom& g) {
    const int64_t total = g.NC * g.H * g.W;
    if (total == 0) return;
    max_bwd_kernel<<<cuda::blocks_for(total, kThreads), kThreads, 0, cuda::stream()>>>(dx, dy, idx, g, total);
    cuda::check_launch("max_pool2d_backward");
}

void avg_pool2d_forward_f32_cuda(float* y, const float* x, const Pool2dGeom& g, bool count_include_pad) {
    const int64_t total = g.NC * g.OH() * g.OW();
    if (total == 0) return;
    avg_fwd_kernel<<<cuda::blocks_for(total, kThreads), kThreads, 0, cuda::stream()>>>(y, x, g, count_include_pad,
                                                                                        total);
    cuda::check_launch("avg_pool2d_forward");
}

void avg_pool2d_backward_f32_cuda(float* dx, const float* dy, const Pool2dGeom& g, bool count_include_pad) {
    const int64_t total = g.NC * g.H * g.W;
    if (total == 0) return;
    avg_bwd_kernel<<<cuda::blocks_for(total, kThreads), kThreads, 0, cuda::stream()>>>(dx, dy, g, count_include_pad,
                                                                                        total);
    cuda::check_launch("avg_pool2d_backward");
}

void resize_bilinear_forward_f32_cuda(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                      int64_t OW, int mode) {
    const int64_t total = NC * OH * OW;
    if (total == 0) return;
    resize_fwd_kernel<<<cuda::blocks_for(total, kThreads), kThreads, 0, cuda::stream()>>>(y, x, H, W, OH, OW, mode,
                                                                                           total);
    cuda::check_launch("resize_bilinear_forward");
}

void resize_bilinear_backward_f32_cuda(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                       int64_t OW, int mode) {
    const int64_t total = NC * H * W;
    if (total == 0) return;
    resize_bwd_kernel<<<cuda::blocks_for(total, kThreads), kThreads, 0, cuda::stream()>>>(dx, dy, H, W, OH, OW, mode,
                                                                                           total);
    cuda::check_launch("resize_bilinear_backward");
}

}  // namespace dd2
