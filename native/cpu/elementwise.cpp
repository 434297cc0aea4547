// Elementwise kernels: loops simple enough for the compiler to vectorise, split over the thread pool.
// Tested by test/kernels/elementwise.test.ts against the float64 references in test/ref/.
#include "dd2/cpu/elementwise.h"

#include <cmath>
#include <cstring>

#include "common/check.h"
#include "common/threadpool.h"

namespace dd2 {
namespace {

constexpr int64_t kGrain = 1 << 15;
constexpr float kSqrt2Inv = 0.70710678118654752f;
constexpr float kSqrt2PiInv = 0.39894228040143268f;
constexpr float kGeluTanhC = 0.79788456080286536f;  // sqrt(2/pi)

template <typename F>
void pfor(int64_t n, F f) {
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) f(i);
    });
}

inline float sigmoidf(float v) { return 1.0f / (1.0f + std::exp(-v)); }

}  // namespace

void fill_f32_cpu(float* y, int64_t n, float v) { pfor(n, [=](int64_t i) { y[i] = v; }); }
void fill_i32_cpu(int32_t* y, int64_t n, int32_t v) { pfor(n, [=](int64_t i) { y[i] = v; }); }
void cast_i32_to_f32_cpu(float* y, const int32_t* x, int64_t n) { pfor(n, [=](int64_t i) { y[i] = (float)x[i]; }); }
void cast_f32_to_i32_cpu(int32_t* y, const float* x, int64_t n) { pfor(n, [=](int64_t i) { y[i] = (int32_t)x[i]; }); }

void unary_forward_f32_cpu(int op, float* y, const float* x, int64_t n) {
    switch (op) {
        case 0: pfor(n, [=](int64_t i) { y[i] = -x[i]; }); break;
        case 1: pfor(n, [=](int64_t i) { y[i] = std::exp(x[i]); }); break;
        case 2: pfor(n, [=](int64_t i) { y[i] = std::log(x[i]); }); break;
        case 3: pfor(n, [=](int64_t i) { y[i] = std::sqrt(x[i]); }); break;
        case 4: pfor(n, [=](int64_t i) { y[i] = std::tanh(x[i]); }); break;
        case 5: pfor(n, [=](int64_t i) { y[i] = sigmoidf(x[i]); }); break;
        case 6: pfor(n, [=](int64_t i) { y[i] = x[i] * sigmoidf(x[i]); }); break;
        case 7: pfor(n, [=](int64_t i) { y[i] = 0.5f * x[i] * std::erfc(-x[i] * kSqrt2Inv); }); break;   // erfc: no cancellation for x < 0
        case 8: pfor(n, [=](int64_t i) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + std::tanh(kGeluTanhC * (v + 0.044715f * v * v * v)));
        }); break;
        case 9: pfor(n, [=](int64_t i) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }); break;
        case 10: pfor(n, [=](int64_t i) { y[i] = std::fabs(x[i]); }); break;
        case 11: pfor(n, [=](int64_t i) { y[i] = x[i] * x[i]; }); break;
        case 12: pfor(n, [=](int64_t i) { y[i] = 1.0f / std::sqrt(x[i]); }); break;
        case 13: pfor(n, [=](int64_t i) { y[i] = std::sin(x[i]); }); break;
        case 14: pfor(n, [=](int64_t i) { y[i] = std::cos(x[i]); }); break;
        case 15: pfor(n, [=](int64_t i) { y[i] = 1.0f / x[i]; }); break;
        default: throw Error(cat("dd2: unary_forward: unknown op code ", op));
    }
}

void unary_backward_f32_cpu(int op, float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    switch (op) {
        case 0: pfor(n, [=](int64_t i) { dx[i] = -dy[i]; }); break;
        case 1: pfor(n, [=](int64_t i) { dx[i] = dy[i] * y[i]; }); break;
        case 2: pfor(n, [=](int64_t i) { dx[i] = dy[i] / x[i]; }); break;
        case 3: pfor(n, [=](int64_t i) { dx[i] = dy[i] * 0.5f / y[i]; }); break;
        case 4: pfor(n, [=](int64_t i) { dx[i] = dy[i] * (1.0f - y[i] * y[i]); }); break;
        case 5: pfor(n, [=](int64_t i) { dx[i] = dy[i] * y[i] * (1.0f - y[i]); }); break;
        case 6: pfor(n, [=](int64_t i) {
            float s = sigmoidf(x[i]);
            dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
        }); break;
        case 7: pfor(n, [=](int64_t i) {
            float v = x[i];
            float cdf = 0.5f * std::erfc(-v * kSqrt2Inv);
            dx[i] = dy[i] * (cdf + v * kSqrt2PiInv * std::exp(-0.5f * v * v));
        }); break;
        case 8: pfor(n, [=](int64_t i) {
            float v = x[i];
            float u = kGeluTanhC * (v + 0.044715f * v * v * v);
            float t = std::tanh(u);
            float du = kGeluTanhC * (1.0f + 3.0f * 0.044715f * v * v);
            dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
        }); break;
        case 9: pfor(n, [=](int64_t i) { dx[i] = x[i] > 0.0f ? dy[i] : 0.0f; }); break;
        case 10: pfor(n, [=](int64_t i) { dx[i] = x[i] > 0.0f ? dy[i] : (x[i] < 0.0f ? -dy[i] : 0.0f); }); break;
        case 11: pfor(n, [=](int64_t i) { dx[i] = 2.0f * x[i] * dy[i]; }); break;
        case 12: pfor(n, [=](int64_t i) { dx[i] = -0.5f * dy[i] * y[i] * y[i] * y[i]; }); break;
        case 13: pfor(n, [=](int64_t i) { dx[i] = dy[i] * std::cos(x[i]); }); break;
        case 14: pfor(n, [=](int64_t i) { dx[i] = -dy[i] * std::sin(x[i]); }); break;
        case 15: pfor(n, [=](int64_t i) { dx[i] = -dy[i] * y[i] * y[i]; }); break;
        default: throw Error(cat("dd2: unary_backward: unknown op code ", op));
    }
}

namespace {

template <typename F>
void binary_loop(F f, float* y, const float* a, const float* b, const std::vector<int64_t>& shape,
                 const std::vector<int64_t>& as, const std::vector<int64_t>& bs) {
    const int64_t rank = (int64_t)shape.size();
    int64_t total = 1;
    for (int64_t s : shape) total *= s;
    if (total == 0) return;
    if (rank == 0) {
        y[0] = f(a[0], b[0]);
        return;
    }
    const int64_t inner = shape[rank - 1];
    const int64_t ai = as[rank - 1], bi = bs[rank - 1];
    const int64_t rows = total / inner;
    parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            // Decompose the row index into the outer coordinates to find both base offsets.
            int64_t rem = r, ao = 0, bo = 0;
            for (int64_t d = rank - 2; d >= 0; --d) {
                int64_t c = rem % shape[d];
                rem /= shape[d];
                ao += c * as[d];
                bo += c * bs[d];
            }
            float* yr = y + r * inner;
            const float* ar = a + ao;
            const float* br = b + bo;
            if (ai == 1 && bi == 1) {
                for (int64_t i = 0; i < inner; ++i) yr[i] = f(ar[i], br[i]);
            } else if (ai == 1 && bi == 0) {
                const float bv = br[0];
                for (int64_t i = 0; i < inner; ++i) yr[i] = f(ar[i], bv);
            } else if (ai == 0 && bi == 1) {
                const float av = ar[0];
                for (int64_t i = 0; i < inner; ++i) yr[i] = f(av, br[i]);
            } else {
                for (int64_t i = 0; i < inner; ++i) yr[i] = f(ar[i * ai], br[i * bi]);
            }
        }
    });
}

}  // namespace

void binary_forward_f32_cpu(int op, float* y, const float* a, const float* b, const std::vector<int64_t>& shape,
                            const std::vector<int64_t>& as, const std::vector<int64_t>& bs) {
    switch (op) {
        case 0: binary_loop([](float u, float v) { return u + v; }, y, a, b, shape, as, bs); break;
        case 1: binary_loop([](float u, float v) { return u - v; }, y, a, b, shape, as, bs); break;
        case 2: binary_loop([](float u, float v) { return u * v; }, y, a, b, shape, as, bs); break;
        case 3: binary_loop([](float u, float v) { return u / v; }, y, a, b, shape, as, bs); break;
        case 4: binary_loop([](float u, float v) { return u >= v ? u : v; }, y, a, b, shape, as, bs); break;
        case 5: binary_loop([](float u, float v) { return u <= v ? u : v; }, y, a, b, shape, as, bs); break;
        case 6: binary_loop([](float u, float v) { return std::pow(u, v); }, y, a, b, shape, as, bs); break;
        default: throw Error(cat("dd2: binary_forward: unknown op code ", op));
    }
}

void scalar_forward_f32_cpu(int op, float* y, const float* x, float s, int64_t n) {
    switch (op) {
        case 0: pfor(n, [=](int64_t i) { y[i] = x[i] + s; }); break;
        case 1: pfor(n, [=](int64_t i) { y[i] = x[i] * s; }); break;
        case 2:
            if (s == 2.0f) pfor(n, [=](int64_t i) { y[i] = x[i] * x[i]; });
            else pfor(n, [=](int64_t i) { y[i] = std::pow(x[i], s); });
            break;
        case 3: pfor(n, [=](int64_t i) { y[i] = s - x[i]; }); break;
        case 4: pfor(n, [=](int64_t i) { y[i] = s / x[i]; }); break;
        case 5: pfor(n, [=](int64_t i) { y[i] = x[i] >= s ? x[i] : s; }); break;
        case 6: pfor(n, [=](int64_t i) { y[i] = x[i] <= s ? x[i] : s; }); break;
        case 7: pfor(n, [=](int64_t i) { y[i] = x[i] >= s ? 1.0f : 0.0f; }); break;
        case 8: pfor(n, [=](int64_t i) { y[i] = x[i] > s ? 1.0f : 0.0f; }); break;
        case 9: pfor(n, [=](int64_t i) { y[i] = x[i] <= s ? 1.0f : 0.0f; }); break;
        case 10: pfor(n, [=](int64_t i) { y[i] = x[i] < s ? 1.0f : 0.0f; }); break;
        case 11: pfor(n, [=](int64_t i) { y[i] = x[i] == s ? 1.0f : 0.0f; }); break;
        default: throw Error(cat("dd2: scalar_forward: unknown op code ", op));
    }
}

void axpy_f32_cpu(float* y, const float* x, int64_t n, float alpha) {
    pfor(n, [=](int64_t i) { y[i] += alpha * x[i]; });
}

void copy_strided_cpu(uint32_t* dst, int64_t doff, const std::vector<int64_t>& ds, const uint32_t* src,
                      int64_t soff, const std::vector<int64_t>& ss, const std::vector<int64_t>& shape) {
    const int64_t rank = (int64_t)shape.size();
    int64_t total = 1;
    for (int64_t s : shape) total *= s;
    if (total == 0) return;
    if (rank == 0) {
        dst[doff] = src[soff];
        return;
    }
    const int64_t inner = shape[rank - 1];
    const int64_t di = ds[rank - 1], si = ss[rank - 1];
    const int64_t rows = total / inner;
    parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t rem = r, d = doff, s = soff;
            for (int64_t k = rank - 2; k >= 0; --k) {
                int64_t c = rem % shape[k];
                rem /= shape[k];
                d += c * ds[k];
                s += c * ss[k];
            }
            if (di == 1 && si == 1) {
                std::memcpy(dst + d, src + s, (size_t)inner * 4);
            } else {
                for (int64_t i = 0; i < inner; ++i) dst[d + i * di] = src[s + i * si];
            }
        }
    });
}

void reduce_forward_f32_cpu(int op, float* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
    // Accumulate in double for sums: exact enough that the float64 reference bounds the error by
    // one float32 rounding of the result.
    parallel_for(outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t o = r / inner, i = r % inner;
            const float* xp = x + o * n * inner + i;
            if (op == 0) {
                double s = 0.0;
                for (int64_t j = 0; j < n; ++j) s += (double)xp[j * inner];
                y[r] = (float)s;
            } else if (op == 1 || op == 2) {
                float m = n > 0 ? xp[0] : (op == 1 ? -INFINITY : INFINITY);
                for (int64_t j = 1; j < n; ++j) {
                    float v = xp[j * inner];
                    if (op == 1 ? (v > m || std::isnan(v)) : (v < m || std::isnan(v))) m = v;
                    if (std::isnan(m)) break;
                }
                y[r] = m;
            } else if (op == 3) {
                float m = -INFINITY;
                for (int64_t j = 0; j < n; ++j) m = std::fmax(m, xp[j * inner]);
                if (std::isinf(m)) {
                    y[r] = m;
                    continue;
                }
                double s = 0.0;
                for (int64_t j = 0; j < n; ++j) s += std::exp((double)xp[j * inner] - m);
                y[r] = (float)(m + std::log(s));
            } else {
                throw Error(cat("dd2: reduce_forward: unknown op code ", op));
            }
        }
    });
}

void argmax_f32_cpu(int32_t* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
    pfor(outer * inner, [=](int64_t r) {
        const int64_t o = r / inner, i = r % inner;
        const float* xp = x + o * n * inner + i;
        int32_t best = 0;
        float m = xp[0];
        for (int64_t j = 1; j < n; ++j)
            if (xp[j * inner] > m) {
                m = xp[j * inner];
                best = (int32_t)j;
            }
        y[r] = best;
    });
}

void scatter_argmax_backward_f32_cpu(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                                     int64_t inner) {
    std::memset(dx, 0, (size_t)(outer * n * inner) * sizeof(float));
    pfor(outer * inner, [=](int64_t r) {
        const int64_t o = r / inner, i = r % inner;
        dx[o * n * inner + (int64_t)idx[r] * inner + i] = dy[r];
    });
}

double sum_squares_f32_cpu(const float* x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += (double)x[i] * (double)x[i];
    return s;
}

}  // namespace dd2
