// Bindings for softmax, log-softmax and cross-entropy (native/cpu/softmax.cpp, native/cuda/softmax.cu):
// unpack ids and sizes, check that every buffer is large enough, dispatch on the tensors' device.
// Argument order as in lib/tensor/native.ts.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/softmax.h"
#include "dd2/cuda/softmax.h"

using namespace dd2;

// rows and cols of a (rows, cols) kernel; both non-negative, product in range.
static int64_t matrix_size(Args& a, int64_t rows, int64_t cols) {
    DD2_CHECK_RANGE(rows >= 0 && cols >= 0, a.op(), ": negative size (rows ", rows, ", cols ", cols, ")");
    return rows * cols;
}

DD2_KERNEL(softmax_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(2), cols = a.i64(3), n = matrix_size(a, rows, cols);
    a.need(0, n * 4);
    a.need(1, n * 4);
    DD2_DISPATCH(a, softmax_forward_f32_cpu(a.f32(0), a.f32(1), rows, cols),
                 softmax_forward_f32_cuda(a.f32(0), a.f32(1), rows, cols));
}

DD2_KERNEL(softmax_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(3), cols = a.i64(4), n = matrix_size(a, rows, cols);
    for (size_t k = 0; k <= 2; ++k) a.need(k, n * 4);
    DD2_DISPATCH(a, softmax_backward_f32_cpu(a.f32(0), a.f32(1), a.f32(2), rows, cols),
                 softmax_backward_f32_cuda(a.f32(0), a.f32(1), a.f32(2), rows, cols));
}

DD2_KERNEL(log_softmax_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(2), cols = a.i64(3), n = matrix_size(a, rows, cols);
    a.need(0, n * 4);
    a.need(1, n * 4);
    DD2_DISPATCH(a, log_softmax_forward_f32_cpu(a.f32(0), a.f32(1), rows, cols),
                 log_softmax_forward_f32_cuda(a.f32(0), a.f32(1), rows, cols));
}

DD2_KERNEL(log_softmax_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(3), cols = a.i64(4), n = matrix_size(a, rows, cols);
    for (size_t k = 0; k <= 2; ++k) a.need(k, n * 4);
    DD2_DISPATCH(a, log_softmax_backward_f32_cpu(a.f32(0), a.f32(1), a.f32(2), rows, cols),
                 log_softmax_backward_f32_cuda(a.f32(0), a.f32(1), a.f32(2), rows, cols));
}

// (loss, lse, logits, targets, rows, cols, ignoreIndex)
DD2_KERNEL(cross_entropy_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(4), cols = a.i64(5), n = matrix_size(a, rows, cols);
    a.need(0, rows * 4);
    a.need(1, rows * 4);
    a.need(2, n * 4);
    a.need(3, rows * 4);
    float *loss = a.f32(0), *lse = a.f32(1), *logits = a.f32(2);
    int32_t* targets = a.i32(3);
    int64_t ignore = a.i64(6);
    DD2_DISPATCH(a, cross_entropy_forward_f32_cpu(loss, lse, logits, targets, rows, cols, ignore),
                 cross_entropy_forward_f32_cuda(loss, lse, logits, targets, rows, cols, ignore));
}

// (dlogits, dloss, logits, lse, targets, rows, cols, ignoreIndex)
DD2_KERNEL(cross_entropy_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(5), cols = a.i64(6), n = matrix_size(a, rows, cols);
    a.need(0, n * 4);
    a.need(1, rows * 4);
    a.need(2, n * 4);
    a.need(3, rows * 4);
    a.need(4, rows * 4);
    float *dlogits = a.f32(0), *dloss = a.f32(1), *logits = a.f32(2), *lse = a.f32(3);
    int32_t* targets = a.i32(4);
    int64_t ignore = a.i64(7);
    DD2_DISPATCH(a, cross_entropy_backward_f32_cpu(dlogits, dloss, logits, lse, targets, rows, cols, ignore),
                 cross_entropy_backward_f32_cuda(dlogits, dloss, logits, lse, targets, rows, cols, ignore));
}
