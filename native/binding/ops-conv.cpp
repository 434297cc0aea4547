// Bindings for convolution and nearest upsampling (native/cpu/conv.cpp, native/cuda/conv.cu). Wrappers
// check the geometry (positive kernel and stride, kernel within the padded input) and the buffer sizes,
// then dispatch.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/conv.h"
#include "dd2/cuda/conv.h"

using namespace dd2;

// Reads N, Cin, H, W, Cout, KH, KW, stride, padH from arguments k .. k+8 and padW from k+9 (absent:
// padW = padH, the square-padding form) and validates them.
static Conv2dGeom read_geom(Args& a, size_t k) {
    const int64_t padH = a.i64(k + 8), padW = a.absent(k + 9) ? padH : a.i64(k + 9);
    Conv2dGeom g{a.i64(k), a.i64(k + 1), a.i64(k + 2), a.i64(k + 3), a.i64(k + 4), a.i64(k + 5), a.i64(k + 6),
                 a.i64(k + 7), padH, padW};
    DD2_CHECK_RANGE(g.N >= 0 && g.Cin >= 0 && g.H >= 0 && g.W >= 0 && g.Cout >= 0, a.op(),
                    ": negative size (N ", g.N, ", Cin ", g.Cin, ", H ", g.H, ", W ", g.W, ", Cout ", g.Cout, ")");
    DD2_CHECK_RANGE(g.KH >= 1 && g.KW >= 1, a.op(), ": kernel ", g.KH, "x", g.KW, " must be at least 1x1");
    DD2_CHECK_RANGE(g.stride >= 1 && g.padH >= 0 && g.padW >= 0, a.op(), ": stride ", g.stride,
                    " must be >= 1 and padding (", g.padH, ", ", g.padW, ") >= 0");
    DD2_CHECK_RANGE(g.H + 2 * g.padH >= g.KH && g.W + 2 * g.padW >= g.KW, a.op(), ": kernel ", g.KH, "x", g.KW,
                    " is larger than the padded input ", g.H + 2 * g.padH, "x", g.W + 2 * g.padW);
    return g;
}

static int64_t x_elems(const Conv2dGeom& g) { return g.N * g.Cin * g.H * g.W; }
static int64_t y_elems(const Conv2dGeom& g) { return g.N * g.Cout * g.OH() * g.OW(); }
static int64_t w_elems(const Conv2dGeom& g) { return g.Cout * g.Cin * g.KH * g.KW; }

// conv2d_forward(y, x, w, b, N, Cin, H, W, Cout, KH, KW, stride, padH[, padW])
DD2_KERNEL(conv2d_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    Conv2dGeom g = read_geom(a, 4);
    a.need(0, y_elems(g) * 4);
    a.need(1, x_elems(g) * 4);
    a.need(2, w_elems(g) * 4);
    if (!a.absent(3)) a.need(3, g.Cout * 4);
    DD2_DISPATCH(a, conv2d_forward_f32_cpu(a.f32(0), a.f32(1), a.f32(2), a.f32_opt(3), g),
                 conv2d_forward_f32_cuda(a.f32(0), a.f32(1), a.f32(2), a.f32_opt(3), g));
}

// conv2d_backward_input(dx, dy, w, N, Cin, H, W, Cout, KH, KW, stride, padH[, padW])
DD2_KERNEL(conv2d_backward_input, ON_CPU | DD2_CUDA_IF_BUILT) {
    Conv2dGeom g = read_geom(a, 3);
    a.need(0, x_elems(g) * 4);
    a.need(1, y_elems(g) * 4);
    a.need(2, w_elems(g) * 4);
    DD2_DISPATCH(a, conv2d_backward_input_f32_cpu(a.f32(0), a.f32(1), a.f32(2), g),
                 conv2d_backward_input_f32_cuda(a.f32(0), a.f32(1), a.f32(2), g));
}

// conv2d_backward_weight(dw, db, dy, x, N, Cin, H, W, Cout, KH, KW, stride, padH[, padW])
DD2_KERNEL(conv2d_backward_weight, ON_CPU | DD2_CUDA_IF_BUILT) {
    Conv2dGeom g = read_geom(a, 4);
    a.need(0, w_elems(g) * 4);
    if (!a.absent(1)) a.need(1, g.Cout * 4);
    a.need(2, y_elems(g) * 4);
    a.need(3, x_elems(g) * 4);
    DD2_DISPATCH(a, conv2d_backward_weight_f32_cpu(a.f32(0), a.f32_opt(1), a.f32(2), a.f32(3), g),
                 conv2d_backward_weight_f32_cuda(a.f32(0), a.f32_opt(1), a.f32(2), a.f32(3), g));
}

static void check_upsample(Args& a, int64_t NC, int64_t H, int64_t W, int64_t f) {
    DD2_CHECK_RANGE(NC >= 0 && H >= 0 && W >= 0, a.op(), ": negative size (NC ", NC, ", H ", H, ", W ", W, ")");
    DD2_CHECK_RANGE(f >= 1, a.op(), ": factor ", f, " must be >= 1");
}

// upsample_nearest_forward(y, x, NC, H, W, factor)
DD2_KERNEL(upsample_nearest_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t NC = a.i64(2), H = a.i64(3), W = a.i64(4), f = a.i64(5);
    check_upsample(a, NC, H, W, f);
    a.need(0, NC * H * W * f * f * 4);
    a.need(1, NC * H * W * 4);
    DD2_DISPATCH(a, upsample_nearest_forward_f32_cpu(a.f32(0), a.f32(1), NC, H, W, f),
                 upsample_nearest_forward_f32_cuda(a.f32(0), a.f32(1), NC, H, W, f));
}

// upsample_nearest_backward(dx, dy, NC, H, W, factor)
DD2_KERNEL(upsample_nearest_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t NC = a.i64(2), H = a.i64(3), W = a.i64(4), f = a.i64(5);
    check_upsample(a, NC, H, W, f);
    a.need(0, NC * H * W * 4);
    a.need(1, NC * H * W * f * f * 4);
    DD2_DISPATCH(a, upsample_nearest_backward_f32_cpu(a.f32(0), a.f32(1), NC, H, W, f),
                 upsample_nearest_backward_f32_cuda(a.f32(0), a.f32(1), NC, H, W, f));
}
