// Elementwise, strided-copy and reduction kernels on the GPU (grid-stride loops; reductions over a
// contiguous axis use one block per output with warp shuffles). Same op codes and results as
// native/cpu/elementwise.cpp; the op suite runs against both (DD2_DEFAULT_DEVICE=cuda).
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/elementwise.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxRank = 8;

struct Strided {
    int rank;
    long long shape[kMaxRank];
    long long a[kMaxRank];
    long long b[kMaxRank];
};

Strided make_strided(const std::vector<int64_t>& shape, const std::vector<int64_t>& as,
                     const std::vector<int64_t>& bs, const char* op) {
    DD2_CHECK_RANGE(shape.size() <= (size_t)kMaxRank, op, " on cuda supports rank <= ", kMaxRank);
    Strided s{};
    s.rank = (int)shape.size();
    for (int i = 0; i < s.rank; ++i) {
        s.shape[i] = shape[i];
        s.a[i] = as[i];
        s.b[i] = bs[i];
    }
    return s;
}

__device__ __forceinline__ float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }

__device__ float unary_f(int op, float x) {
    switch (op) {
        case 0: return -x;
        case 1: return expf(x);
        case 2: return logf(x);
        case 3: return sqrtf(x);
        case 4: return tanhf(x);
        case 5: return sigmoidf_(x);
        case 6: return x * sigmoidf_(x);
        case 7: return 0.5f * x * erfcf(-x * 0.70710678118654752f);   // erfc: no cancellation for x < 0
        case 8: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
        case 9: return x > 0.0f ? x : 0.0f;
        case 10: return fabsf(x);
        case 11: return x * x;
        case 12: return 1.0f / sqrtf(x);
        case 13: return sinf(x);
        case 14: return cosf(x);
        default: return 1.0f / x;
    }
}

__device__ float unary_df(int op, float dy, float x, float y) {
    switch (op) {
        case 0: return -dy;
        case 1: return dy * y;
        case 2: return dy / x;
        case 3: return dy * 0.5f / y;
        case 4: return dy * (1.0f - y * y);
        case 5: return dy * y * (1.0f - y);
        case 6: { float s = sigmoidf_(x); return dy * s * (1.0f + x * (1.0f - s)); }
        case 7: {
            float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
            return dy * (cdf + x * 0.39894228040143268f * expf(-0.5f * x * x));
        }
        case 8: {
            const float c = 0.79788456080286536f;
            float u = c * (x + 0.044715f * x * x * x), t = tanhf(u), du = c * (1.0f + 3.0f * 0.044715f * x * x);
            return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
        }
        case 9: return x > 0.0f ? dy : 0.0f;
        case 10: return x > 0.0f ? dy : (x < 0.0f ? -dy : 0.0f);
        case 11: return 2.0f * x * dy;
        case 12: return -0.5f * dy * y * y * y;
        case 13: return dy * cosf(x);
        case 14: return -dy * sinf(x);
        default: return -dy * y * y;
    }
}

__device__ float binary_f(int op, float u, float v) {
    switch (op) {
        case 0: return u + v;
        case 1: return u - v;
        case 2: return u * v;
        case 3: return u / v;
        case 4: return u >= v ? u : v;
        case 5: return u <= v ? u : v;
        default: return powf(u, v);
    }
}

__device__ float scalar_f(int op, float x, float s) {
    switch (op) {
        case 0: return x + s;
        case 1: return x * s;
        case 2: return s == 2.0f ? x * x : powf(x, s);
        case 3: return s - x;
        case 4: return s / x;
        case 5: return x >= s ? x : s;
        case 6: return x <= s ? x : s;
        case 7: return x >= s ? 1.0f : 0.0f;
        case 8: return x > s ? 1.0f : 0.0f;
        case 9: return x <= s ? 1.0f : 0.0f;
        case 10: return x < s ? 1.0f : 0.0f;
        default: return x == s ? 1.0f : 0.0f;
    }
}

template <typename T>
__global__ void fill_kernel(T* y, int64_t n, T v) { DD2_GRID_LOOP(i, n) y[i] = v; }
__global__ void cast_i2f_kernel(float* y, const int32_t* x, int64_t n) { DD2_GRID_LOOP(i, n) y[i] = (float)x[i]; }
__global__ void cast_f2i_kernel(int32_t* y, const float* x, int64_t n) { DD2_GRID_LOOP(i, n) y[i] = (int32_t)x[i]; }
__global__ void unary_kernel(int op, float* y, const float* x, int64_t n) { DD2_GRID_LOOP(i, n) y[i] = unary_f(op, x[i]); }
__global__ void unary_bwd_kernel(int op, float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    DD2_GRID_LOOP(i, n) dx[i] = unary_df(op, dy[i], x[i], y[i]);
}
__global__ void scalar_kernel(int op, float* y, const float* x, float s, int64_t n) {
    DD2_GRID_LOOP(i, n) y[i] = scalar_f(op, x[i], s);
}
__global__ void axpy_kernel(float* y, const float* x, int64_t n, float alpha) { DD2_GRID_LOOP(i, n) y[i] += alpha * x[i]; }

__global__ void binary_kernel(int op, float* y, const float* a, const float* b, Strided s, int64_t n) {
    DD2_GRID_LOOP(i, n) {
        long long rem = i, ia = 0, ib = 0;
        for (int d = s.rank - 1; d >= 0; --d) {
            long long c = rem % s.shape[d];
            rem /= s.shape[d];
            ia += c * s.a[d];
            ib += c * s.b[d];
        }
        y[i] = binary_f(op, a[ia], b[ib]);
    }
}

// s.a = destination strides, s.b = source strides
__global__ void copy_strided_kernel(uint32_t* dst, long long doff, const uint32_t* src, long long soff, Strided s,
                                    int64_t n) {
    DD2_GRID_LOOP(i, n) {
        long long rem = i, d = doff, o = soff;
        for (int k = s.rank - 1; k >= 0; --k) {
            long long c = rem % s.shape[k];
            rem /= s.shape[k];
            d += c * s.a[k];
            o += c * s.b[k];
        }
        dst[d] = src[o];
    }
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide reduction of one value per thread (256 threads); result valid in thread 0.
template <bool kMax>
__device__ double block_reduce(double v) {
    __shared__ double sh[kThreads / 32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = kMax ? (double)warp_max((float)v) : warp_sum(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < kThreads / 32 ? sh[lane] : (kMax ? -INFINITY : 0.0);
        v = kMax ? (double)warp_max((float)v) : warp_sum(v);
    }
    __syncthreads();
    return v;
}

// One block per output row of a contiguous (rows, n) reduction (inner == 1).
__global__ void reduce_rows_kernel(int op, float* y, const float* x, int64_t n) {
    const float* xr = x + blockIdx.x * n;
    __shared__ float s_max;
    if (op == 0) {
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += (double)xr[j];
        s = block_reduce<false>(s);
        if (threadIdx.x == 0) y[blockIdx.x] = (float)s;
        return;
    }
    if (op == 1 || op == 2) {
        const float sign = op == 1 ? 1.0f : -1.0f;
        float m = -INFINITY;
        bool nan = false;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            float v = sign * xr[j];
            nan |= isnan(v);
            m = fmaxf(m, v);
        }
        nan = __syncthreads_or(nan);
        m = (float)block_reduce<true>(m);
        if (threadIdx.x == 0) y[blockIdx.x] = nan ? NAN : sign * m;
        return;
    }
    // logsumexp
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = (float)block_reduce<true>(m);
    if (threadIdx.x == 0) s_max = m;
    __syncthreads();
    m = s_max;
    if (isinf(m)) {
        if (threadIdx.x == 0) y[blockIdx.x] = m;
        return;
    }
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += exp((double)xr[j] - m);
    s = block_reduce<false>(s);
    if (threadIdx.x == 0) y[blockIdx.x] = (float)(m + log(s));
}

// One thread per output for strided (inner > 1) reductions.
__global__ void reduce_strided_kernel(int op, float* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
    DD2_GRID_LOOP(r, outer * inner) {
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
                if (op == 1 ? (v > m || isnan(v)) : (v < m || isnan(v))) m = v;
                if (isnan(m)) break;
            }
            y[r] = m;
        } else {
            float m = -INFINITY;
            for (int64_t j = 0; j < n; ++j) m = fmaxf(m, xp[j * inner]);
            if (isinf(m)) { y[r] = m; continue; }
            double s = 0.0;
            for (int64_t j = 0; j < n; ++j) s += exp((double)xp[j * inner] - m);
            y[r] = (float)(m + log(s));
        }
    }
}

__global__ void argmax_kernel(int32_t* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
    DD2_GRID_LOOP(r, outer * inner) {
        const int64_t o = r / inner, i = r % inner;
        const float* xp = x + o * n * inner + i;
        int32_t best = 0;
        float m = xp[0];
        for (int64_t j = 1; j < n; ++j)
            if (xp[j * inner] > m) { m = xp[j * inner]; best = (int32_t)j; }
        y[r] = best;
    }
}

__global__ void scatter_argmax_kernel(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                                      int64_t inner) {
    DD2_GRID_LOOP(r, outer * inner) {
        const int64_t o = r / inner, i = r % inner;
        dx[o * n * inner + (int64_t)idx[r] * inner + i] = dy[r];
    }
}

__global__ void sum_squares_kernel(double* partial, const float* x, int64_t n) {
    double s = 0.0;
    DD2_GRID_LOOP(i, n) s += (double)x[i] * (double)x[i];
    s = block_reduce<false>(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

#define LAUNCH(kernel, n, name, ...)                                                         \
    do {                                                                                     \
        if ((n) > 0) {                                                                       \
            kernel<<<cuda::blocks_for((n), kThreads), kThreads, 0, cuda::stream()>>>(__VA_ARGS__); \
            cuda::check_launch(name);                                                        \
        }                                                                                    \
    } while (0)

}  // namespace

void fill_f32_cuda(float* y, int64_t n, float v) { LAUNCH(fill_kernel<float>, n, "fill_f32", y, n, v); }
void fill_i32_cuda(int32_t* y, int64_t n, int32_t v) { LAUNCH(fill_kernel<int32_t>, n, "fill_i32", y, n, v); }
void cast_i32_to_f32_cuda(float* y, const int32_t* x, int64_t n) { LAUNCH(cast_i2f_kernel, n, "cast", y, x, n); }
void cast_f32_to_i32_cuda(int32_t* y, const float* x, int64_t n) { LAUNCH(cast_f2i_kernel, n, "cast", y, x, n); }
void unary_forward_f32_cuda(int op, float* y, const float* x, int64_t n) {
    DD2_CHECK(op >= 0 && op <= 15, "unary_forward: unknown op code ", op);
    LAUNCH(unary_kernel, n, "unary_forward", op, y, x, n);
}
void unary_backward_f32_cuda(int op, float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    DD2_CHECK(op >= 0 && op <= 15, "unary_backward: unknown op code ", op);
    LAUNCH(unary_bwd_kernel, n, "unary_backward", op, dx, dy, x, y, n);
}
void binary_forward_f32_cuda(int op, float* y, const float* a, const float* b, const std::vector<int64_t>& shape,
                             const std::vector<int64_t>& as, const std::vector<int64_t>& bs) {
    DD2_CHECK(op >= 0 && op <= 6, "binary_forward: unknown op code ", op);
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    Strided st = make_strided(shape, as, bs, "binary_forward");
    LAUNCH(binary_kernel, n, "binary_forward", op, y, a, b, st, n);
}
void scalar_forward_f32_cuda(int op, float* y, const float* x, float s, int64_t n) {
    DD2_CHECK(op >= 0 && op <= 11, "scalar_forward: unknown op code ", op);
    LAUNCH(scalar_kernel, n, "scalar_forward", op, y, x, s, n);
}
void axpy_f32_cuda(float* y, const float* x, int64_t n, float alpha) { LAUNCH(axpy_kernel, n, "axpy", y, x, n, alpha); }
void copy_strided_cuda(uint32_t* dst, int64_t doff, const std::vector<int64_t>& ds, const uint32_t* src,
                       int64_t soff, const std::vector<int64_t>& ss, const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    Strided st = make_strided(shape, ds, ss, "copy_strided");
    LAUNCH(copy_strided_kernel, n, "copy_strided", dst, doff, src, soff, st, n);
}
void reduce_forward_f32_cuda(int op, float* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
    DD2_CHECK(op >= 0 && op <= 3, "reduce_forward: unknown op code ", op);
    if (outer * inner == 0) return;
    if (inner == 1 && n >= 64 && outer <= 0x7fffffffLL) {
        reduce_rows_kernel<<<(unsigned)outer, kThreads, 0, cuda::stream()>>>(op, y, x, n);
        cuda::check_launch("reduce_forward");
    } else {
        LAUNCH(reduce_strided_kernel, outer * inner, "reduce_forward", op, y, x, outer, n, inner);
    }
}
void argmax_f32_cuda(int32_t* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
    LAUNCH(argmax_kernel, outer * inner, "argmax", y, x, outer, n, inner);
}
void scatter_argmax_backward_f32_cuda(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                                      int64_t inner) {
    cuda::check_cuda(cudaMemsetAsync(dx, 0, (size_t)(outer * n * inner) * sizeof(float), cuda::stream()),
                     "scatter_argmax_backward");
    LAUNCH(scatter_argmax_kernel, outer * inner, "scatter_argmax_backward", dx, dy, idx, outer, n, inner);
}
double sum_squares_f32_cuda(const float* x, int64_t n) {
    if (n == 0) return 0.0;
    const unsigned blocks = cuda::blocks_for(n, kThreads, 1024);
    cuda::Scratch partial(blocks * sizeof(double));
    sum_squares_kernel<<<blocks, kThreads, 0, cuda::stream()>>>(partial.as<double>(), x, n);
    cuda::check_launch("sum_squares");
    std::vector<double> host(blocks);
    cuda::check_cuda(cudaMemcpy(host.data(), partial.as<double>(), blocks * sizeof(double), cudaMemcpyDeviceToHost),
                     "sum_squares");
    double s = 0.0;
    for (double v : host) s += v;
    return s;
}

}  // namespace dd2
