// Bindings for layer, RMS and group norm (native/cpu/norm.cpp, native/cuda/norm.cu): unpack ids and
// sizes, check every buffer's size, dispatch on the tensors' device. Optional tensors (w, b, dx, dw,
// db) are -1. Argument order as in lib/tensor/native.ts.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/norm.h"
#include "dd2/cuda/norm.h"

#include <cmath>
#include <initializer_list>

using namespace dd2;

static void check_sizes(Args& a, std::initializer_list<int64_t> sizes) {
    for (int64_t s : sizes) DD2_CHECK_RANGE(s >= 0, a.op(), ": negative size ", s);
}

static double check_eps(Args& a, size_t k) {
    double eps = a.f64(k);
    DD2_CHECK_RANGE(eps >= 0 && std::isfinite(eps), a.op(), ": eps must be finite and >= 0, got ", eps);
    return eps;
}

// An optional float32 buffer of `n` elements: null when absent, else size-checked.
static float* opt(Args& a, size_t k, int64_t n) {
    if (a.absent(k)) return nullptr;
    a.need(k, n * 4);
    return a.f32(k);
}

static float* req(Args& a, size_t k, int64_t n) {
    a.need(k, n * 4);
    return a.f32(k);
}

// (y, mean, rstd, x, w, b, rows, cols, eps)
DD2_KERNEL(layer_norm_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(6), cols = a.i64(7);
    check_sizes(a, {rows, cols});
    double eps = check_eps(a, 8);
    float *y = req(a, 0, rows * cols), *mean = req(a, 1, rows), *rstd = req(a, 2, rows);
    float *x = req(a, 3, rows * cols), *w = opt(a, 4, cols), *b = opt(a, 5, cols);
    DD2_DISPATCH(a, layer_norm_forward_f32_cpu(y, mean, rstd, x, w, b, rows, cols, eps),
                 layer_norm_forward_f32_cuda(y, mean, rstd, x, w, b, rows, cols, eps));
}

// (dx, dw, db, dy, x, w, mean, rstd, rows, cols)
DD2_KERNEL(layer_norm_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(8), cols = a.i64(9);
    check_sizes(a, {rows, cols});
    float *dx = opt(a, 0, rows * cols), *dw = opt(a, 1, cols), *db = opt(a, 2, cols);
    float *dy = req(a, 3, rows * cols), *x = req(a, 4, rows * cols), *w = opt(a, 5, cols);
    float *mean = req(a, 6, rows), *rstd = req(a, 7, rows);
    DD2_DISPATCH(a, layer_norm_backward_f32_cpu(dx, dw, db, dy, x, w, mean, rstd, rows, cols),
                 layer_norm_backward_f32_cuda(dx, dw, db, dy, x, w, mean, rstd, rows, cols));
}

// (y, rstd, x, w, rows, cols, eps)
DD2_KERNEL(rms_norm_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(4), cols = a.i64(5);
    check_sizes(a, {rows, cols});
    double eps = check_eps(a, 6);
    float *y = req(a, 0, rows * cols), *rstd = req(a, 1, rows), *x = req(a, 2, rows * cols);
    float* w = opt(a, 3, cols);
    DD2_DISPATCH(a, rms_norm_forward_f32_cpu(y, rstd, x, w, rows, cols, eps),
                 rms_norm_forward_f32_cuda(y, rstd, x, w, rows, cols, eps));
}

// (dx, dw, dy, x, w, rstd, rows, cols)
DD2_KERNEL(rms_norm_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(6), cols = a.i64(7);
    check_sizes(a, {rows, cols});
    float *dx = opt(a, 0, rows * cols), *dw = opt(a, 1, cols), *dy = req(a, 2, rows * cols);
    float *x = req(a, 3, rows * cols), *w = opt(a, 4, cols), *rstd = req(a, 5, rows);
    DD2_DISPATCH(a, rms_norm_backward_f32_cpu(dx, dw, dy, x, w, rstd, rows, cols),
                 rms_norm_backward_f32_cuda(dx, dw, dy, x, w, rstd, rows, cols));
}

static void check_groups(Args& a, int64_t N, int64_t C, int64_t HW, int64_t G) {
    check_sizes(a, {N, C, HW});
    DD2_CHECK_RANGE(G > 0 && C % G == 0, a.op(), ": ", C, " channels do not split into ", G, " groups");
}

// (y, mean, rstd, x, w, b, N, C, HW, G, eps)
DD2_KERNEL(group_norm_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t N = a.i64(6), C = a.i64(7), HW = a.i64(8), G = a.i64(9);
    check_groups(a, N, C, HW, G);
    double eps = check_eps(a, 10);
    float *y = req(a, 0, N * C * HW), *mean = req(a, 1, N * G), *rstd = req(a, 2, N * G);
    float *x = req(a, 3, N * C * HW), *w = opt(a, 4, C), *b = opt(a, 5, C);
    DD2_DISPATCH(a, group_norm_forward_f32_cpu(y, mean, rstd, x, w, b, N, C, HW, G, eps),
                 group_norm_forward_f32_cuda(y, mean, rstd, x, w, b, N, C, HW, G, eps));
}

// (dx, dw, db, dy, x, w, mean, rstd, N, C, HW, G)
DD2_KERNEL(group_norm_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t N = a.i64(8), C = a.i64(9), HW = a.i64(10), G = a.i64(11);
    check_groups(a, N, C, HW, G);
    float *dx = opt(a, 0, N * C * HW), *dw = opt(a, 1, C), *db = opt(a, 2, C);
    float *dy = req(a, 3, N * C * HW), *x = req(a, 4, N * C * HW), *w = opt(a, 5, C);
    float *mean = req(a, 6, N * G), *rstd = req(a, 7, N * G);
    DD2_DISPATCH(a, group_norm_backward_f32_cpu(dx, dw, db, dy, x, w, mean, rstd, N, C, HW, G),
                 group_norm_backward_f32_cuda(dx, dw, db, dy, x, w, mean, rstd, N, C, HW, G));
}
