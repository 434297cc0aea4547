// Bindings for the indexing kernels (native/cpu/index.cpp, native/cuda/index.cu): embedding and gather,
// forward and backward.
// Each wrapper checks sizes and buffer lengths; index values are checked by the kernels.
#include <initializer_list>

#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/index.h"
#include "dd2/cuda/index.h"

using namespace dd2;

static void nonneg(const char* op, std::initializer_list<int64_t> sizes) {
    for (int64_t s : sizes) DD2_CHECK_RANGE(s >= 0, op, ": negative size ", s);
}

// embedding_forward(y, weight, idx, n, dim, vocab)
DD2_KERNEL(embedding_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(3), dim = a.i64(4), vocab = a.i64(5);
    nonneg("embedding_forward", {n, dim, vocab});
    a.need(0, n * dim * 4);
    a.need(1, vocab * dim * 4);
    a.need(2, n * 4);
    DD2_DISPATCH(a, embedding_forward_f32_cpu(a.f32(0), a.f32(1), a.i32(2), n, dim, vocab),
                 embedding_forward_f32_cuda(a.f32(0), a.f32(1), a.i32(2), n, dim, vocab));
}

// embedding_backward(dweight, dy, idx, n, dim, vocab)
DD2_KERNEL(embedding_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(3), dim = a.i64(4), vocab = a.i64(5);
    nonneg("embedding_backward", {n, dim, vocab});
    a.need(0, vocab * dim * 4);
    a.need(1, n * dim * 4);
    a.need(2, n * 4);
    DD2_DISPATCH(a, embedding_backward_f32_cpu(a.f32(0), a.f32(1), a.i32(2), n, dim, vocab),
                 embedding_backward_f32_cuda(a.f32(0), a.f32(1), a.i32(2), n, dim, vocab));
}

// gather_forward(y, x, idx, outer, n, inner, k)
DD2_KERNEL(gather_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t outer = a.i64(3), n = a.i64(4), inner = a.i64(5), k = a.i64(6);
    nonneg("gather_forward", {outer, n, inner, k});
    a.need(0, outer * k * inner * 4);
    a.need(1, outer * n * inner * 4);
    a.need(2, outer * k * inner * 4);
    DD2_DISPATCH(a, gather_forward_f32_cpu(a.f32(0), a.f32(1), a.i32(2), outer, n, inner, k),
                 gather_forward_f32_cuda(a.f32(0), a.f32(1), a.i32(2), outer, n, inner, k));
}

// gather_backward(dx, dy, idx, outer, n, inner, k)
DD2_KERNEL(gather_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t outer = a.i64(3), n = a.i64(4), inner = a.i64(5), k = a.i64(6);
    nonneg("gather_backward", {outer, n, inner, k});
    a.need(0, outer * n * inner * 4);
    a.need(1, outer * k * inner * 4);
    a.need(2, outer * k * inner * 4);
    DD2_DISPATCH(a, gather_backward_f32_cpu(a.f32(0), a.f32(1), a.i32(2), outer, n, inner, k),
                 gather_backward_f32_cuda(a.f32(0), a.f32(1), a.i32(2), outer, n, inner, k));
}
