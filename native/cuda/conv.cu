// Convolution as im2col + GEMM on the GPU, and nearest upsampling; the same chunked scheme as
// native/cpu/conv.cpp (see there): a chunk of nb images is unrolled into one wide column matrix
// col (Cin*KH*KW, nb*OH*OW) and each chunk is one gemm_f32_cuda call; col + the staged output stay
// under DD2_CONV_COL_BYTES (default 64 MB, read per call) and 1x1 stride-1 unpadded convolutions skip
// im2col. col2im and the upsampling gradient gather (one thread per input element, terms added in the
// CPU's order), so nothing uses atomics. Tested by test/kernels/conv.test.ts with DD2_DEFAULT_DEVICE=cuda.
#include <algorithm>
#include <cstdlib>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/conv.h"
#include "dd2/cuda/gemm.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kFits32 = int64_t(1) << 30;   // below this, kernels index with int32 (cheaper division)

int64_t col_budget_bytes() {
    if (const char* env = std::getenv("DD2_CONV_COL_BYTES")) {
        long long v = std::atoll(env);
        if (v > 0) return (int64_t)v;
    }
    return int64_t(64) << 20;
}

#define GRID_LOOP_T(I, i, n) \
    for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < (n); i += (I)(blockDim.x * gridDim.x))

// Launches kernel<int32_t> when every index it forms stays below kFits32, else kernel<int64_t>.
#define LAUNCH_IDX(kernel, count, extent, name, ...)                                          \
    do {                                                                                      \
        if ((count) > 0) {                                                                    \
            const unsigned blocks_ = cuda::blocks_for((count), kThreads);                     \
            if ((extent) < kFits32)                                                           \
                kernel<int32_t><<<blocks_, kThreads, 0, cuda::stream()>>>(__VA_ARGS__);       \
            else                                                                              \
                kernel<int64_t><<<blocks_, kThreads, 0, cuda::stream()>>>(__VA_ARGS__);       \
            cuda::check_launch(name);                                                         \
        }                                                                                     \
    } while (0)

// Per-image geometry in the kernel's index type (converts from Dims<int64_t> at launch).
template <typename I>
struct Dims {
    I Cin, H, W, KH, KW, s, ph, pw, OH, OW;
    explicit Dims(const Conv2dGeom& g)
        : Cin(g.Cin), H(g.H), W(g.W), KH(g.KH), KW(g.KW), s(g.stride), ph(g.padH), pw(g.padW), OH(g.OH()),
          OW(g.OW()) {}
    template <typename J>
    Dims(const Dims<J>& o)
        : Cin((I)o.Cin), H((I)o.H), W((I)o.W), KH((I)o.KH), KW((I)o.KW), s((I)o.s), ph((I)o.ph), pw((I)o.pw),
          OH((I)o.OH), OW((I)o.OW) {}
};

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
// one thread per col element (total = CKK * ld, ld = nb * OHW).
template <typename I>
__global__ void im2col_kernel(float* col, I ld, const float* x, Dims<I> d, I total) {
    const I OHW = d.OH * d.OW, KK = d.KH * d.KW;
    GRID_LOOP_T(I, e, total) {
        const I q = e / ld, rest = e - q * ld;
        const I b = rest / OHW, pix = rest - b * OHW;
        const I oh = pix / d.OW, ow = pix - oh * d.OW;
        const I c = q / KK, kk = q - c * KK, kh = kk / d.KW, kw = kk - kh * d.KW;
        const I ih = oh * d.s - d.ph + kh, iw = ow * d.s - d.pw + kw;
        col[e] = (ih >= 0 && ih < d.H && iw >= 0 && iw < d.W) ? x[((b * d.Cin + c) * d.H + ih) * d.W + iw] : 0.0f;
    }
}

// The adjoint of im2col: one thread per dx element (total = nb * Cin * H * W) sums the col entries that
// im2col copied from it, in (kh, kw) order, and overwrites dx.
template <typename I>
__global__ void col2im_kernel(float* dx, const float* col, I ld, Dims<I> d, I total) {
    const I HW = d.H * d.W, OHW = d.OH * d.OW;
    GRID_LOOP_T(I, e, total) {
        const I t = e / HW, hw = e - t * HW;
        const I b = t / d.Cin, c = t - b * d.Cin;
        const I ih = hw / d.W, iw = hw - ih * d.W;
        const float* cb = col + b * OHW;
        float acc = 0.0f;
        for (I kh = 0; kh < d.KH; ++kh) {
            const I hs = ih + d.ph - kh;   // oh * s
            if (hs < 0 || hs % d.s != 0 || hs / d.s >= d.OH) continue;
            const I oh = hs / d.s;
            for (I kw = 0; kw < d.KW; ++kw) {
                const I ws = iw + d.pw - kw;
                if (ws < 0 || ws % d.s != 0 || ws / d.s >= d.OW) continue;
                acc += cb[((c * d.KH + kh) * d.KW + kw) * ld + oh * d.OW + ws / d.s];
            }
        }
        dx[e] = acc;
    }
}

// Between (nb, C, L) images and the wide (C, nb*L) layout; one thread per element (total = nb * C * L).
template <typename I>
__global__ void to_wide_kernel(float* wide, const float* img, I nb, I C, I L, I total) {
    GRID_LOOP_T(I, e, total) {
        const I t = e / L, l = e - t * L, b = t / C, c = t - b * C;
        wide[(c * nb + b) * L + l] = img[e];
    }
}

template <typename I>
__global__ void from_wide_kernel(float* img, const float* wide, I nb, I C, I L, I total) {
    GRID_LOOP_T(I, e, total) {
        const I t = e / L, l = e - t * L, b = t / C, c = t - b * C;
        img[e] = wide[(c * nb + b) * L + l];
    }
}

template <typename I>
__global__ void add_bias_kernel(float* y, const float* bias, I C, I L, I total) {
    GRID_LOOP_T(I, e, total) y[e] += bias[(e / L) % C];
}

// One block per channel: db[co] = sum over (n, i) of dy[n, co, i], in double.
__global__ void bias_grad_kernel(float* db, const float* dy, int64_t N, int64_t C, int64_t L) {
    const int64_t co = blockIdx.x;
    double s = 0.0;
    for (int64_t t = threadIdx.x; t < N * L; t += blockDim.x) {
        const int64_t n = t / L, i = t - n * L;
        s += (double)dy[(n * C + co) * L + i];
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    __shared__ double part[kThreads / 32];
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < kThreads / 32; ++w) total += part[w];
        db[co] = (float)total;
    }
}

template <typename I>
__global__ void upsample_fwd_kernel(float* y, const float* x, I W, I f, I total) {
    const I Wf = W * f;
    GRID_LOOP_T(I, e, total) {
        const I ro = e / Wf, col = e - ro * Wf;
        y[e] = x[(ro / f) * W + col / f];
    }
}

// One thread per dx element (total = NC * H * W): the sum of its f x f block, rows outer.
template <typename I>
__global__ void upsample_bwd_kernel(float* dx, const float* dy, I W, I f, I total) {
    const I Wf = W * f;
    GRID_LOOP_T(I, e, total) {
        const I r = e / W, w = e - r * W;
        const float* src = dy + r * f * Wf + w * f;
        float acc = 0.0f;
        for (I a = 0; a < f; ++a)
            for (I j = 0; j < f; ++j) acc += src[a * Wf + j];
        dx[e] = acc;
    }
}

void im2col(float* col, int64_t ld, const float* x, int64_t nb, const Conv2dGeom& g) {
    const Dims<int64_t> d(g);
    const int64_t total = g.Cin * g.KH * g.KW * ld;
    const int64_t extent = std::max(total, nb * g.Cin * g.H * g.W);
    LAUNCH_IDX(im2col_kernel, total, extent, "conv2d im2col", col, ld, x, d, total);
}

void col2im(float* dx, const float* col, int64_t ld, int64_t nb, const Conv2dGeom& g) {
    const Dims<int64_t> d(g);
    const int64_t total = nb * g.Cin * g.H * g.W;
    const int64_t extent = std::max(total, g.Cin * g.KH * g.KW * ld);
    LAUNCH_IDX(col2im_kernel, total, extent, "conv2d col2im", dx, col, ld, d, total);
}

void to_wide(float* wide, const float* img, int64_t nb, int64_t C, int64_t L) {
    const int64_t total = nb * C * L;
    LAUNCH_IDX(to_wide_kernel, total, total, "conv2d to_wide", wide, img, nb, C, L, total);
}

void from_wide(float* img, const float* wide, int64_t nb, int64_t C, int64_t L) {
    const int64_t total = nb * C * L;
    LAUNCH_IDX(from_wide_kernel, total, total, "conv2d from_wide", img, wide, nb, C, L, total);
}

}  // namespace

void conv2d_forward_f32_cuda(float* y, const float* x, const float* w, const float* b, const Conv2dGeom& g) {
    const int64_t OHW = g.OH() * g.OW(), CKK = g.Cin * g.KH * g.KW, HW = g.H * g.W;
    if (g.N == 0 || g.Cout == 0 || OHW == 0) return;
    if (is_pointwise(g)) {
        // y[n] (Cout, HW) = W (Cout, Cin) . x[n] (Cin, HW), one batched GEMM with W broadcast.
        gemm_f32_cuda(y, w, x, g.N, g.Cout, HW, g.Cin, false, false, 0, g.Cin * HW, g.Cout * HW, 1.0f, 0.0f);
    } else {
        const int64_t nb = chunk_images(g);
        cuda::Scratch col(CKK * nb * OHW * sizeof(float)), stage(nb > 1 ? g.Cout * nb * OHW * sizeof(float) : 0);
        for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
            const int64_t cur = std::min(nb, g.N - n0), ld = cur * OHW;
            float* yc = y + n0 * g.Cout * OHW;
            im2col(col.as<float>(), ld, x + n0 * g.Cin * HW, cur, g);
            float* out = cur == 1 ? yc : stage.as<float>();
            gemm_f32_cuda(out, w, col.as<float>(), 1, g.Cout, ld, CKK, false, false, 0, 0, 0, 1.0f, 0.0f);
            if (cur > 1) from_wide(yc, stage.as<float>(), cur, g.Cout, OHW);
        }
    }
    if (b) {
        const int64_t total = g.N * g.Cout * OHW;
        LAUNCH_IDX(add_bias_kernel, total, total, "conv2d bias", y, b, g.Cout, OHW, total);
    }
}

void conv2d_backward_input_f32_cuda(float* dx, const float* dy, const float* w, const Conv2dGeom& g) {
    const int64_t OHW = g.OH() * g.OW(), CKK = g.Cin * g.KH * g.KW, HW = g.H * g.W;
    if (g.N == 0 || g.Cin == 0 || HW == 0) return;
    if (is_pointwise(g)) {
        // dx[n] (Cin, HW) = W^T . dy[n] (Cout, HW); W is stored (Cout, Cin).
        gemm_f32_cuda(dx, w, dy, g.N, g.Cin, HW, g.Cout, true, false, 0, g.Cout * HW, g.Cin * HW, 1.0f, 0.0f);
        return;
    }
    const int64_t nb = chunk_images(g);
    cuda::Scratch col(CKK * nb * OHW * sizeof(float)), stage(nb > 1 ? g.Cout * nb * OHW * sizeof(float) : 0);
    for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
        const int64_t cur = std::min(nb, g.N - n0), ld = cur * OHW;
        const float* dyc = dy + n0 * g.Cout * OHW;
        if (cur > 1) {
            to_wide(stage.as<float>(), dyc, cur, g.Cout, OHW);
            dyc = stage.as<float>();
        }
        gemm_f32_cuda(col.as<float>(), w, dyc, 1, CKK, ld, g.Cout, true, false, 0, 0, 0, 1.0f, 0.0f);
        col2im(dx + n0 * g.Cin * HW, col.as<float>(), ld, cur, g);
    }
}

void conv2d_backward_weight_f32_cuda(float* dw, float* db, const float* dy, const float* x, const Conv2dGeom& g) {
    const int64_t OHW = g.OH() * g.OW(), CKK = g.Cin * g.KH * g.KW, HW = g.H * g.W;
    if (db && g.Cout > 0) {
        bias_grad_kernel<<<(unsigned)g.Cout, kThreads, 0, cuda::stream()>>>(db, dy, g.N, g.Cout, OHW);
        cuda::check_launch("conv2d_backward_weight (bias)");
    }
    if (g.Cout * CKK == 0) return;
    if (g.N == 0 || OHW == 0) {
        cuda::check_cuda(cudaMemsetAsync(dw, 0, sizeof(float) * g.Cout * CKK, cuda::stream()),
                         "conv2d_backward_weight");
        return;
    }
    if (is_pointwise(g)) {
        // dW (Cout, Cin) = sum_n dy[n] (Cout, HW) . x[n]^T, accumulated image by image.
        for (int64_t n = 0; n < g.N; ++n) {
            gemm_f32_cuda(dw, dy + n * g.Cout * HW, x + n * g.Cin * HW, 1, g.Cout, g.Cin, HW, false, true, 0, 0, 0,
                          1.0f, n == 0 ? 0.0f : 1.0f);
        }
        return;
    }
    const int64_t nb = chunk_images(g);
    cuda::Scratch col(CKK * nb * OHW * sizeof(float)), stage(nb > 1 ? g.Cout * nb * OHW * sizeof(float) : 0);
    for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
        const int64_t cur = std::min(nb, g.N - n0), ld = cur * OHW;
        const float* dyc = dy + n0 * g.Cout * OHW;
        if (cur > 1) {
            to_wide(stage.as<float>(), dyc, cur, g.Cout, OHW);
            dyc = stage.as<float>();
        }
        im2col(col.as<float>(), ld, x + n0 * g.Cin * HW, cur, g);
        gemm_f32_cuda(dw, dyc, col.as<float>(), 1, g.Cout, CKK, ld, false, true, 0, 0, 0, 1.0f, n0 == 0 ? 0.0f : 1.0f);
    }
}

void upsample_nearest_forward_f32_cuda(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t f) {
    const int64_t total = NC * H * W * f * f;
    LAUNCH_IDX(upsample_fwd_kernel, total, total, "upsample_nearest_forward", y, x, W, f, total);
}

void upsample_nearest_backward_f32_cuda(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t f) {
    const int64_t total = NC * H * W;
    LAUNCH_IDX(upsample_bwd_kernel, total, total * f * f, "upsample_nearest_backward", dx, dy, W, f, total);
}

}  // namespace dd2
