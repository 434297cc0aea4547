// Softmax, log-softmax and fused cross-entropy on the CPU, float32, over the last axis of a dense
// (rows, cols) matrix (cols = V for cross-entropy). Every row subtracts its maximum before exp, so
// logits of any finite magnitude (e.g. ±1e4) neither overflow nor underflow to a NaN; row sums are
// accumulated in double.
// Masked entries: -inf logits get probability 0. A row that is entirely -inf (or has cols = 0) is
// treated as "nothing to attend to": softmax gives all 0s, log_softmax gives all -inf, and both
// backward passes give a zero gradient for it (PyTorch would give NaN). Cross-entropy of such a row
// has lse = -inf, loss = +inf for a non-ignored target, and a zero gradient. NaN inputs propagate.
#pragma once
#include <cstdint>

namespace dd2 {

// y = softmax(x); dx = y * (dy - sum(dy * y)) row by row (dx may alias dy).
void softmax_forward_f32_cpu(float* y, const float* x, int64_t rows, int64_t cols);
void softmax_backward_f32_cpu(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols);
// y = x - logsumexp(x); dx = dy - exp(y) * sum(dy) row by row (dx may alias dy).
void log_softmax_forward_f32_cpu(float* y, const float* x, int64_t rows, int64_t cols);
void log_softmax_backward_f32_cpu(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols);

// Throws dd2::RangeError naming the row and value if a target is outside [0, cols) and is not
// ignore_index. Both cross-entropy kernels call it before touching any memory.
void check_targets(const char* op, const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index);
// loss[r] = lse[r] - logits[r, t[r]] (0 where t[r] == ignore_index); lse[r] = logsumexp(logits[r]) is
// written for every row (ignored ones included) for the backward pass.
void cross_entropy_forward_f32_cpu(float* loss, float* lse, const float* logits, const int32_t* targets,
                                   int64_t rows, int64_t cols, int64_t ignore_index);
// dlogits[r] = (softmax(logits[r]) - onehot(t[r])) * dloss[r]; rows with ignored targets get 0s.
// The probabilities exp(logits - lse) are renormalised to sum to 1, which cancels the rounding of lse
// to float32 (it matters when |logits| is large: lse = 1e4 carries an absolute error of ~5e-4).
void cross_entropy_backward_f32_cpu(float* dlogits, const float* dloss, const float* logits, const float* lse,
                                    const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index);

}  // namespace dd2
