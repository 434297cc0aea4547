// Softmax, log-softmax and fused cross-entropy over the last axis of (rows, cols), float32 in and out.
// Rows are independent and split over the thread pool. Row maxima are float; exp is float; row sums,
// dot products and the final subtraction of log-softmax / cross-entropy are double (one rounding at
// the end). Tested by test/kernels/softmax.test.ts against test/ref/softmax.ts.
#include "dd2/cpu/softmax.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/threadpool.h"

namespace dd2 {
namespace {

constexpr int64_t kGrain = 1 << 13;   // elements of exp work per parallel chunk

template <typename F>
void for_rows(int64_t rows, int64_t cols, F f) {
    int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, cols));
    parallel_for(rows, grain, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) f(r);
    });
}

// Largest element; NaNs are skipped here (they still poison the row through exp and the sum).
inline float row_max(const float* x, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
    return m;
}

inline void fill(float* y, int64_t n, float v) {
    for (int64_t j = 0; j < n; ++j) y[j] = v;
}

// sum_j exp(x_j - m) in double; e (optional) receives the float exponentials.
inline double sum_exp(const float* x, int64_t n, float m, float* e) {
    double s = 0.0;
    if (e) {
        for (int64_t j = 0; j < n; ++j) {
            float v = std::exp(x[j] - m);
            e[j] = v;
            s += v;
        }
    } else {
        for (int64_t j = 0; j < n; ++j) s += std::exp(x[j] - m);
    }
    return s;
}

}  // namespace

void softmax_forward_f32_cpu(float* y, const float* x, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float m = row_max(xr, cols);
        if (m == -INFINITY) return fill(yr, cols, 0.0f);
        double s = sum_exp(xr, cols, m, yr);
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < cols; ++j) yr[j] *= inv;
    });
}

void softmax_backward_f32_cpu(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* dyr = dy + r * cols;
        const float* yr = y + r * cols;
        float* dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t j = 0; j < cols; ++j) dot += (double)dyr[j] * yr[j];
        for (int64_t j = 0; j < cols; ++j) dxr[j] = (float)(yr[j] * ((double)dyr[j] - dot));
    });
}

void log_softmax_forward_f32_cpu(float* y, const float* x, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float m = row_max(xr, cols);
        if (m == -INFINITY) return fill(yr, cols, -INFINITY);
        double shift = (double)m + std::log(sum_exp(xr, cols, m, nullptr));
        for (int64_t j = 0; j < cols; ++j) yr[j] = (float)((double)xr[j] - shift);
    });
}

void log_softmax_backward_f32_cpu(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* dyr = dy + r * cols;
        const float* yr = y + r * cols;
        float* dxr = dx + r * cols;
        double s = 0.0;
        for (int64_t j = 0; j < cols; ++j) s += dyr[j];
        if (row_max(yr, cols) == -INFINITY) return fill(dxr, cols, 0.0f);   // fully masked row
        for (int64_t j = 0; j < cols; ++j) dxr[j] = (float)((double)dyr[j] - (double)std::exp(yr[j]) * s);
    });
}

void check_targets(const char* op, const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index) {
    for (int64_t r = 0; r < rows; ++r) {
        int64_t t = targets[r];
        DD2_CHECK_RANGE(t == ignore_index || (t >= 0 && t < cols), op, ": target ", t, " at row ", r,
                        " is out of range [0, ", cols, ") and is not the ignore index ", ignore_index);
    }
}

void cross_entropy_forward_f32_cpu(float* loss, float* lse, const float* logits, const int32_t* targets,
                                   int64_t rows, int64_t cols, int64_t ignore_index) {
    check_targets("cross_entropy_forward", targets, rows, cols, ignore_index);
    for_rows(rows, cols, [=](int64_t r) {
        const float* xr = logits + r * cols;
        const bool ignored = targets[r] == ignore_index;
        float m = row_max(xr, cols);
        if (m == -INFINITY) {
            lse[r] = -INFINITY;
            loss[r] = ignored ? 0.0f : INFINITY;
            return;
        }
        double ls = std::log(sum_exp(xr, cols, m, nullptr));
        lse[r] = (float)((double)m + ls);
        // (m - x_t) is exact in double; adding log(s) there keeps small losses relatively accurate.
        loss[r] = ignored ? 0.0f : (float)(((double)m - xr[targets[r]]) + ls);
    });
}

void cross_entropy_backward_f32_cpu(float* dlogits, const float* dloss, const float* logits, const float* lse,
                                    const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index) {
    check_targets("cross_entropy_backward", targets, rows, cols, ignore_index);
    for_rows(rows, cols, [=](int64_t r) {
        const float* xr = logits + r * cols;
        float* dr = dlogits + r * cols;
        const int32_t t = targets[r];
        const float L = lse[r];
        if (t == ignore_index || L == -INFINITY) return fill(dr, cols, 0.0f);
        // p_j = exp(x_j - L) / sum_k exp(x_k - L): the float error of L is a common factor that the
        // division removes. exp(x_j - L) <= ~1 since L >= max x (up to rounding), so nothing overflows.
        double s = sum_exp(xr, cols, L, dr);
        const double g = dloss[r];
        const float scale = (float)(g / s);
        const double pt = dr[t];
        for (int64_t j = 0; j < cols; ++j) dr[j] *= scale;
        // p_t - 1 = -(s - e_t) / s: the sum of the other terms, without cancellation when p_t ~ 1.
        dr[t] = (float)(-g * (s - pt) / s);
    });
}

}  // namespace dd2
