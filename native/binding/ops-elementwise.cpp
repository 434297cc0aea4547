// Bindings for the elementwise, strided-copy and reduction kernels (native/cpu/elementwise.cpp).
// Each wrapper unpacks ids and sizes, checks that the buffers are large enough, and dispatches.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/elementwise.h"
#include "dd2/cuda/elementwise.h"

using namespace dd2;

static int64_t product(const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (int64_t x : v) p *= x;
    return p;
}

// Largest element index reached through `strides` over `shape`, plus one (0 for an empty shape).
static int64_t strided_extent(int64_t off, const std::vector<int64_t>& shape, const std::vector<int64_t>& st) {
    int64_t hi = off;
    for (size_t k = 0; k < shape.size(); ++k) {
        if (shape[k] == 0) return 0;
        DD2_CHECK_RANGE(st[k] >= 0, "negative strides are not supported");
        hi += (shape[k] - 1) * st[k];
    }
    return hi + 1;
}

DD2_KERNEL(fill_f32, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(1);
    a.need(0, n * 4);
    DD2_DISPATCH(a, fill_f32_cpu(a.f32(0), n, (float)a.f64(2)), fill_f32_cuda(a.f32(0), n, (float)a.f64(2)));
}

DD2_KERNEL(fill_i32, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(1);
    a.need(0, n * 4);
    DD2_DISPATCH(a, fill_i32_cpu(a.i32(0), n, (int32_t)a.i64(2)), fill_i32_cuda(a.i32(0), n, (int32_t)a.i64(2)));
}

DD2_KERNEL(cast_i32_to_f32, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(2);
    a.need(0, n * 4);
    a.need(1, n * 4);
    DD2_DISPATCH(a, cast_i32_to_f32_cpu(a.f32(0), a.i32(1), n), cast_i32_to_f32_cuda(a.f32(0), a.i32(1), n));
}

DD2_KERNEL(cast_f32_to_i32, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(2);
    a.need(0, n * 4);
    a.need(1, n * 4);
    DD2_DISPATCH(a, cast_f32_to_i32_cpu(a.i32(0), a.f32(1), n), cast_f32_to_i32_cuda(a.i32(0), a.f32(1), n));
}

DD2_KERNEL(unary_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(3);
    a.need(1, n * 4);
    a.need(2, n * 4);
    DD2_DISPATCH(a, unary_forward_f32_cpu((int)a.i64(0), a.f32(1), a.f32(2), n), unary_forward_f32_cuda((int)a.i64(0), a.f32(1), a.f32(2), n));
}

DD2_KERNEL(unary_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(5);
    for (size_t k = 1; k <= 4; ++k) a.need(k, n * 4);
    DD2_DISPATCH(a, unary_backward_f32_cpu((int)a.i64(0), a.f32(1), a.f32(2), a.f32(3), a.f32(4), n), unary_backward_f32_cuda((int)a.i64(0), a.f32(1), a.f32(2), a.f32(3), a.f32(4), n));
}

DD2_KERNEL(binary_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    std::vector<int64_t> shape = a.ints(4), as = a.ints(5), bs = a.ints(6);
    DD2_CHECK_RANGE(as.size() == shape.size() && bs.size() == shape.size(),
                    "binary_forward: shape and strides must have the same rank");
    a.need(1, product(shape) * 4);
    a.need(2, strided_extent(0, shape, as) * 4);
    a.need(3, strided_extent(0, shape, bs) * 4);
    DD2_DISPATCH(a, binary_forward_f32_cpu((int)a.i64(0), a.f32(1), a.f32(2), a.f32(3), shape, as, bs), binary_forward_f32_cuda((int)a.i64(0), a.f32(1), a.f32(2), a.f32(3), shape, as, bs));
}

DD2_KERNEL(scalar_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(4);
    a.need(1, n * 4);
    a.need(2, n * 4);
    DD2_DISPATCH(a, scalar_forward_f32_cpu((int)a.i64(0), a.f32(1), a.f32(2), (float)a.f64(3), n), scalar_forward_f32_cuda((int)a.i64(0), a.f32(1), a.f32(2), (float)a.f64(3), n));
}

DD2_KERNEL(axpy, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(2);
    a.need(0, n * 4);
    a.need(1, n * 4);
    DD2_DISPATCH(a, axpy_f32_cpu(a.f32(0), a.f32(1), n, (float)a.f64(3)), axpy_f32_cuda(a.f32(0), a.f32(1), n, (float)a.f64(3)));
}

DD2_KERNEL(copy_strided, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t doff = a.i64(1), soff = a.i64(4);
    std::vector<int64_t> ds = a.ints(2), ss = a.ints(5), shape = a.ints(6);
    DD2_CHECK_RANGE(ds.size() == shape.size() && ss.size() == shape.size(),
                    "copy_strided: shape and strides must have the same rank");
    a.need(0, strided_extent(doff, shape, ds) * 4);
    a.need(3, strided_extent(soff, shape, ss) * 4);
    DD2_DISPATCH(a, copy_strided_cpu(static_cast<uint32_t*>(a.storage(0).ptr), doff, ds,
                     static_cast<const uint32_t*>(a.storage(3).ptr), soff, ss, shape), copy_strided_cuda(static_cast<uint32_t*>(a.storage(0).ptr), doff, ds,
                     static_cast<const uint32_t*>(a.storage(3).ptr), soff, ss, shape));
}

DD2_KERNEL(reduce_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t outer = a.i64(3), n = a.i64(4), inner = a.i64(5);
    a.need(1, outer * inner * 4);
    a.need(2, outer * n * inner * 4);
    DD2_DISPATCH(a, reduce_forward_f32_cpu((int)a.i64(0), a.f32(1), a.f32(2), outer, n, inner), reduce_forward_f32_cuda((int)a.i64(0), a.f32(1), a.f32(2), outer, n, inner));
}

DD2_KERNEL(argmax, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t outer = a.i64(2), n = a.i64(3), inner = a.i64(4);
    DD2_CHECK_RANGE(n > 0, "argmax: empty axis");
    a.need(0, outer * inner * 4);
    a.need(1, outer * n * inner * 4);
    DD2_DISPATCH(a, argmax_f32_cpu(a.i32(0), a.f32(1), outer, n, inner), argmax_f32_cuda(a.i32(0), a.f32(1), outer, n, inner));
}

DD2_KERNEL(scatter_argmax_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t outer = a.i64(3), n = a.i64(4), inner = a.i64(5);
    a.need(0, outer * n * inner * 4);
    a.need(1, outer * inner * 4);
    a.need(2, outer * inner * 4);
    DD2_DISPATCH(a, scatter_argmax_backward_f32_cpu(a.f32(0), a.f32(1), a.i32(2), outer, n, inner), scatter_argmax_backward_f32_cuda(a.f32(0), a.f32(1), a.i32(2), outer, n, inner));
}

DD2_EXPORT(sum_squares) {
    Args a(info, "sum_squares");
    int64_t n = a.i64(1);
    a.need(0, n * 4);
    double r = 0.0;
    DD2_DISPATCH(a, r = sum_squares_f32_cpu(a.f32(0), n), r = sum_squares_f32_cuda(a.f32(0), n));
    return Napi::Number::New(info.Env(), r);
}
