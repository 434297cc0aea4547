// Softmax, log-softmax and fused cross-entropy over the last axis of (rows, cols), float32 in and out.
// Rows are independent and split over the thread pool. Row maxima are float; exp is float; row sums,
// dot products and the final subtraction of log-softmax / cross-entropy are double (one rounding at
// the end). Tested by test/kernels/softmax.test.ts against test/ref/softmax.ts.
#include "dd2/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/threadpool.h"

namespace dd2 {
namespace {

constexpr int64_t kGrain = 1 << 13;   // elements of exp work per parallel chunk

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, cols)); }

template <typename F>
void for_rows(int64_t rows, int64_t cols, F f) {
    parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) f(r);
    });
}

// Largest element, in eight lanes so it vectorises; NaNs are skipped here (they still poison the row
// through exp and the sum).
inline float row_max(const float* x, int64_t n) {
    float acc[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; ++k) acc[k] = x[j + k] > acc[k] ? x[j + k] : acc[k];
    float m = -INFINITY;
    for (; j < n; ++j) m = x[j] > m ? x[j] : m;
    for (int k = 0; k < 8; ++k) m = acc[k] > m ? acc[k] : m;
    return m;
}

inline void fill(float* y, int64_t n, float v) {
    for (int64_t j = 0; j < n; ++j) y[j] = v;
}

// e[j] = exp(x[j] - m) (e may alias x). libm's expf is not vectorised without -ffast-math; the sums
// that follow are kept out of this loop so that they can be.
inline void exp_shifted(float* e, const float* x, int64_t n, float m) {
    for (int64_t j = 0; j < n; ++j) e[j] = std::exp(x[j] - m);
}

// Sum of floats in double, eight independent partial sums so the adds pipeline (and pair into SIMD).
inline double sum_f64(const float* e, int64_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; ++k) acc[k] += e[j + k];
    double s = 0.0;
    for (; j < n; ++j) s += e[j];
    for (int k = 0; k < 8; ++k) s += acc[k];
    return s;
}

}  // namespace

void softmax_forward_f32_cpu(float* y, const float* x, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float m = row_max(xr, cols);
        if (m == -INFINITY) return fill(yr, cols, 0.0f);
        exp_shifted(yr, xr, cols, m);
        float inv = (float)(1.0 / sum_f64(yr, cols));
        for (int64_t j = 0; j < cols; ++j) yr[j] *= inv;
    });
}

void softmax_backward_f32_cpu(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* dyr = dy + r * cols;
        const float* yr = y + r * cols;
        float* dxr = dx + r * cols;
        double acc[4] = {0, 0, 0, 0}, dot = 0.0;
        int64_t j = 0;
        for (; j + 4 <= cols; j += 4)
            for (int k = 0; k < 4; ++k) acc[k] += (double)dyr[j + k] * yr[j + k];
        for (; j < cols; ++j) dot += (double)dyr[j] * yr[j];
        dot += (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (j = 0; j < cols; ++j) dxr[j] = (float)(yr[j] * ((double)dyr[j] - dot));
    });
}

void log_softmax_forward_f32_cpu(float* y, const float* x, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float m = row_max(xr, cols);
        if (m == -INFINITY) return fill(yr, cols, -INFINITY);
        exp_shifted(yr, xr, cols, m);   // y as scratch
        double shift = (double)m + std::log(sum_f64(yr, cols));
        for (int64_t j = 0; j < cols; ++j) yr[j] = (float)((double)xr[j] - shift);
    });
}

void log_softmax_backward_f32_cpu(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    for_rows(rows, cols, [=](int64_t r) {
        const float* dyr = dy + r * cols;
        const float* yr = y + r * cols;
        float* dxr = dx + r * cols;
        const double s = sum_f64(dyr, cols);
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
    parallel_for(rows, row_grain(cols), [=](int64_t rb, int64_t re) {
        std::vector<float> e(cols);   // scratch for the exponentials of one row
        for (int64_t r = rb; r < re; ++r) {
            const float* xr = logits + r * cols;
            const bool ignored = targets[r] == ignore_index;
            float m = row_max(xr, cols);
            if (m == -INFINITY) {
                lse[r] = -INFINITY;
                loss[r] = ignored ? 0.0f : INFINITY;
                continue;
            }
            exp_shifted(e.data(), xr, cols, m);
            double ls = std::log(sum_f64(e.data(), cols));
            lse[r] = (float)((double)m + ls);
            // (m - x_t) is exact in double; adding log(s) there keeps small losses relatively accurate.
            loss[r] = ignored ? 0.0f : (float)(((double)m - xr[targets[r]]) + ls);
        }
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
        exp_shifted(dr, xr, cols, L);
        const double s = sum_f64(dr, cols);
        const double g = dloss[r];
        const float scale = (float)(g / s);
        const double pt = dr[t];
        for (int64_t j = 0; j < cols; ++j) dr[j] *= scale;
        // p_t - 1 = -(s - e_t) / s: the sum of the other terms, without cancellation when p_t ~ 1.
        dr[t] = (float)(-g * (s - pt) / s);
    });
}

}  // namespace dd2
