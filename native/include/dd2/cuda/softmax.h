// Softmax, log-softmax and fused cross-entropy on the GPU, float32, over the last axis of a dense
// (rows, cols) matrix (cols = V for cross-entropy): the same contracts, masking rules (all -inf rows
// give softmax 0 / log-softmax -inf / zero gradient) and float/double split as dd2/cpu/softmax.h.
// Pointers are device memory; every call enqueues on cuda::stream(). Deterministic (no atomics on data).
// Cross-entropy targets are checked inside the kernel: a row whose target is outside [0, cols) and not
// ignore_index reads nothing and is flagged; the first such row is read back after the kernel (one
// synchronisation per call) and thrown as the CPU's RangeError. Unlike the CPU, the outputs of the good
// rows have been written by then (callers discard them on error).
#pragma once
#include <cstdint>

namespace dd2 {

void softmax_forward_f32_cuda(float* y, const float* x, int64_t rows, int64_t cols);
void softmax_backward_f32_cuda(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols);
void log_softmax_forward_f32_cuda(float* y, const float* x, int64_t rows, int64_t cols);
void log_softmax_backward_f32_cuda(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols);
void cross_entropy_forward_f32_cuda(float* loss, float* lse, const float* logits, const int32_t* targets,
                                    int64_t rows, int64_t cols, int64_t ignore_index);
void cross_entropy_backward_f32_cuda(float* dlogits, const float* dloss, const float* logits, const float* lse,
                                     const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index);

}  // namespace dd2
