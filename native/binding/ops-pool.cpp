// Bindings for max / average pooling and bilinear resizing (native/cpu/pool.cpp, native/cuda/pool.cu).
// Wrappers check the geometry (window >= 1x1, stride >= 1, 0 <= padding <= window / 2, window within the
// padded input, plane index within int32 for max-pool indices) and the buffer sizes, then dispatch.
// Argument order as in lib/tensor/native.ts.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/pool.h"
#include "dd2/cuda/pool.h"

using namespace dd2;

// Reads NC, H, W, KH, KW, SH, SW, PH, PW from arguments k .. k+8 and validates them.
static Pool2dGeom read_pool(Args& a, size_t k) {
    Pool2dGeom g{a.i64(k), a.i64(k + 1), a.i64(k + 2), a.i64(k + 3), a.i64(k + 4),
                 a.i64(k + 5), a.i64(k + 6), a.i64(k + 7), a.i64(k + 8)};
    DD2_CHECK_RANGE(g.NC >= 0 && g.H >= 0 && g.W >= 0, a.op(), ": negative size (NC ", g.NC, ", H ", g.H, ", W ",
                    g.W, ")");
    DD2_CHECK_RANGE(g.KH >= 1 && g.KW >= 1 && g.SH >= 1 && g.SW >= 1, a.op(), ": window ", g.KH, "x", g.KW,
                    " and stride (", g.SH, ", ", g.SW, ") must be >= 1");
    DD2_CHECK_RANGE(g.PH >= 0 && g.PW >= 0 && 2 * g.PH <= g.KH && 2 * g.PW <= g.KW, a.op(), ": padding (", g.PH,
                    ", ", g.PW, ") must be >= 0 and at most half the window ", g.KH, "x", g.KW);
    DD2_CHECK_RANGE(g.H + 2 * g.PH >= g.KH && g.W + 2 * g.PW >= g.KW, a.op(), ": window ", g.KH, "x", g.KW,
                    " is larger than the padded input ", g.H + 2 * g.PH, "x", g.W + 2 * g.PW);
    DD2_CHECK_RANGE(g.H * g.W < (int64_t(1) << 31), a.op(), ": plane ", g.H, "x", g.W, " exceeds int32 indices");
    return g;
}

static int64_t in_elems(const Pool2dGeom& g) { return g.NC * g.H * g.W; }
static int64_t out_elems(const Pool2dGeom& g) { return g.NC * g.OH() * g.OW(); }

// max_pool2d_forward(y, idx, x, NC, H, W, KH, KW, SH, SW, PH, PW)
DD2_KERNEL(max_pool2d_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    Pool2dGeom g = read_pool(a, 3);
    a.need(0, out_elems(g) * 4);
    a.need(1, out_elems(g) * 4);
    a.need(2, in_elems(g) * 4);
    DD2_DISPATCH(a, max_pool2d_forward_f32_cpu(a.f32(0), a.i32(1), a.f32(2), g),
                 max_pool2d_forward_f32_cuda(a.f32(0), a.i32(1), a.f32(2), g));
}

// max_pool2d_backward(dx, dy, idx, NC, H, W, KH, KW, SH, SW, PH, PW)
DD2_KERNEL(max_pool2d_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    Pool2dGeom g = read_pool(a, 3);
    a.need(0, in_elems(g) * 4);
    a.need(1, out_elems(g) * 4);
    a.need(2, out_elems(g) * 4);
    DD2_DISPATCH(a, max_pool2d_backward_f32_cpu(a.f32(0), a.f32(1), a.i32(2), g),
                 max_pool2d_backward_f32_cuda(a.f32(0), a.f32(1), a.i32(2), g));
}

// avg_pool2d_forward(y, x, NC, H, W, KH, KW, SH, SW, PH, PW, countIncludePad)
DD2_KERNEL(avg_pool2d_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    Pool2dGeom g = read_pool(a, 2);
    const bool include = a.flag(11);
    a.need(0, out_elems(g) * 4);
    a.need(1, in_elems(g) * 4);
    DD2_DISPATCH(a, avg_pool2d_forward_f32_cpu(a.f32(0), a.f32(1), g, include),
                 avg_pool2d_forward_f32_cuda(a.f32(0), a.f32(1), g, include));
}

// avg_pool2d_backward(dx, dy, NC, H, W, KH, KW, SH, SW, PH, PW, countIncludePad)
DD2_KERNEL(avg_pool2d_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    Pool2dGeom g = read_pool(a, 2);
    const bool include = a.flag(11);
    a.need(0, in_elems(g) * 4);
    a.need(1, out_elems(g) * 4);
    DD2_DISPATCH(a, avg_pool2d_backward_f32_cpu(a.f32(0), a.f32(1), g, include),
                 avg_pool2d_backward_f32_cuda(a.f32(0), a.f32(1), g, include));
}

static void check_resize(Args& a, int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t mode) {
    DD2_CHECK_RANGE(NC >= 0 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1, a.op(), ": sizes must be positive (NC ", NC,
                    ", H ", H, ", W ", W, ", OH ", OH, ", OW ", OW, ")");
    DD2_CHECK_RANGE(mode == kResizeHalfPixel || mode == kResizeAsymmetric, a.op(), ": mode ", mode,
                    " must be 0 (half-pixel, PyTorch) or 1 (asymmetric, TF1)");
}

// resize_bilinear_forward(y, x, NC, H, W, OH, OW, mode)
DD2_KERNEL(resize_bilinear_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t NC = a.i64(2), H = a.i64(3), W = a.i64(4), OH = a.i64(5), OW = a.i64(6), mode = a.i64(7);
    check_resize(a, NC, H, W, OH, OW, mode);
    a.need(0, NC * OH * OW * 4);
    a.need(1, NC * H * W * 4);
    DD2_DISPATCH(a, resize_bilinear_forward_f32_cpu(a.f32(0), a.f32(1), NC, H, W, OH, OW, (int)mode),
                 resize_bilinear_forward_f32_cuda(a.f32(0), a.f32(1), NC, H, W, OH, OW, (int)mode));
}

// resize_bilinear_backward(dx, dy, NC, H, W, OH, OW, mode)
DD2_KERNEL(resize_bilinear_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t NC = a.i64(2), H = a.i64(3), W = a.i64(4), OH = a.i64(5), OW = a.i64(6), mode = a.i64(7);
    check_resize(a, NC, H, W, OH, OW, mode);
    a.need(0, NC * H * W * 4);
    a.need(1, NC * OH * OW * 4);
    DD2_DISPATCH(a, resize_bilinear_backward_f32_cpu(a.f32(0), a.f32(1), NC, H, W, OH, OW, (int)mode),
                 resize_bilinear_backward_f32_cuda(a.f32(0), a.f32(1), NC, H, W, OH, OW, (int)mode));
}
