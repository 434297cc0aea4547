// Softmax, log-softmax and fused cross-entropy on the GPU over the last axis of (rows, cols), float32.
// Rows of up to kWarpCols columns get one warp each (8 rows per 256-thread block); longer rows get a
// whole block. Reductions are warp shuffles (+ shared memory across warps) in a fixed order, so every
// thread of a row sees the same, run-to-run identical value. Arithmetic follows native/cpu/softmax.cpp:
// row maxima and exp in float, sums, dot products and the final subtraction in double.
// Tested by test/kernels/softmax.test.ts with DD2_DEFAULT_DEVICE=cuda.
#include <climits>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/softmax.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kWarpCols = 512;   // rows up to this long are handled by one warp
constexpr int64_t kMaxBlocks = 1 << 20;

// The threads that share a row: one warp (kWarp) or the whole block. Rows are visited in a grid-stride
// loop that is uniform over the block in block mode (reductions there call __syncthreads).
template <bool kWarp>
struct Rows {
    __device__ static int lane() { return kWarp ? (int)(threadIdx.x & 31) : (int)threadIdx.x; }
    __device__ static int width() { return kWarp ? 32 : kThreads; }
    __device__ static int64_t first() {
        return kWarp ? (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5) : (int64_t)blockIdx.x;
    }
    __device__ static int64_t step() { return kWarp ? (int64_t)gridDim.x * kWarps : (int64_t)gridDim.x; }
};

// Butterfly reductions: every lane ends with the same value (a + b == b + a exactly, so all lanes add
// the same pairs). fmaxf skips NaN, as the CPU's row maximum does.
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Row-wide sum / max returned to every thread of the row; block mode combines the warps' results in
// warp order. The leading barrier keeps a previous call's readers from seeing the new partials.
template <bool kWarp>
__device__ double row_sum(double v) {
    v = warp_sum(v);
    if (kWarp) return v;
    __shared__ double sh[kWarps];
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double s = 0.0;
    for (int w = 0; w < kWarps; ++w) s += sh[w];
    return s;
}
template <bool kWarp>
__device__ float row_max(float v) {
    v = warp_max(v);
    if (kWarp) return v;
    __shared__ float sh[kWarps];
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, sh[w]);
    return m;
}

// Largest value of the row x[0, cols), over the row's threads.
template <bool kWarp>
__device__ float max_of(const float* x, int64_t cols) {
    using R = Rows<kWarp>;
    float m = -INFINITY;
    for (int64_t j = R::lane(); j < cols; j += R::width()) m = fmaxf(m, x[j]);
    return row_max<kWarp>(m);
}

template <bool kWarp>
__global__ void softmax_fwd_kernel(float* y, const float* x, int64_t rows, int64_t cols) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        const float m = max_of<kWarp>(xr, cols);
        if (m == -INFINITY) {
            for (int64_t j = R::lane(); j < cols; j += R::width()) yr[j] = 0.0f;
            continue;
        }
        double s = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) {
            const float e = expf(xr[j] - m);
            yr[j] = e;
            s += e;
        }
        const float inv = (float)(1.0 / row_sum<kWarp>(s));
        for (int64_t j = R::lane(); j < cols; j += R::width()) yr[j] *= inv;   // each thread rereads its own
    }
}

// dx = y * (dy - sum(dy * y)); dx may alias dy (each thread reads and writes only its own columns).
template <bool kWarp>
__global__ void softmax_bwd_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* dyr = dy + r * cols;
        const float* yr = y + r * cols;
        float* dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) dot += (double)dyr[j] * yr[j];
        dot = row_sum<kWarp>(dot);
        for (int64_t j = R::lane(); j < cols; j += R::width()) dxr[j] = (float)(yr[j] * ((double)dyr[j] - dot));
    }
}

template <bool kWarp>
__global__ void log_softmax_fwd_kernel(float* y, const float* x, int64_t rows, int64_t cols) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        const float m = max_of<kWarp>(xr, cols);
        if (m == -INFINITY) {
            for (int64_t j = R::lane(); j < cols; j += R::width()) yr[j] = -INFINITY;
            continue;
        }
        double s = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) s += expf(xr[j] - m);
        const double shift = (double)m + log(row_sum<kWarp>(s));
        for (int64_t j = R::lane(); j < cols; j += R::width()) yr[j] = (float)((double)xr[j] - shift);
    }
}

// dx = dy - exp(y) * sum(dy); a fully masked row (max y = -inf) gets 0s. dx may alias dy.
template <bool kWarp>
__global__ void log_softmax_bwd_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* dyr = dy + r * cols;
        const float* yr = y + r * cols;
        float* dxr = dx + r * cols;
        double s = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) s += dyr[j];
        s = row_sum<kWarp>(s);
        const bool masked = max_of<kWarp>(yr, cols) == -INFINITY;
        for (int64_t j = R::lane(); j < cols; j += R::width())
            dxr[j] = masked ? 0.0f : (float)((double)dyr[j] - (double)expf(yr[j]) * s);
    }
}

// True (and the row recorded in *bad, keeping the smallest) when t is neither ignore_index nor in [0, cols).
template <bool kWarp>
__device__ __forceinline__ bool bad_target(unsigned long long* bad, int64_t r, int64_t t, int64_t cols,
                                           int64_t ignore_index) {
    if (t == ignore_index || (t >= 0 && t < cols)) return false;
    if (Rows<kWarp>::lane() == 0) atomicMin(bad, (unsigned long long)r);
    return true;
}

// loss = lse - x[t] (0 for ignored or bad targets); lse written for every row.
template <bool kWarp>
__global__ void ce_fwd_kernel(float* loss, float* lse, const float* logits, const int32_t* targets, int64_t rows,
                              int64_t cols, int64_t ignore_index, unsigned long long* bad) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* xr = logits + r * cols;
        const int64_t t = targets[r];
        const bool skip = bad_target<kWarp>(bad, r, t, cols, ignore_index) || t == ignore_index;
        const float m = max_of<kWarp>(xr, cols);
        if (m == -INFINITY) {
            if (R::lane() == 0) {
                lse[r] = -INFINITY;
                loss[r] = skip ? 0.0f : INFINITY;
            }
            continue;
        }
        double s = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) s += expf(xr[j] - m);
        const double ls = log(row_sum<kWarp>(s));
        if (R::lane() == 0) {
            lse[r] = (float)((double)m + ls);
            // (m - x_t) is exact in double; adding log(s) there keeps small losses relatively accurate.
            loss[r] = skip ? 0.0f : (float)(((double)m - xr[t]) + ls);
        }
    }
}

// dlogits = (p - onehot(t)) * dloss with p = exp(x - lse) renormalised to sum 1 (cancels the float
// rounding of lse); ignored, bad and fully masked rows get 0s.
template <bool kWarp>
__global__ void ce_bwd_kernel(float* dlogits, const float* dloss, const float* logits, const float* lse,
                              const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index,
                              unsigned long long* bad) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* xr = logits + r * cols;
        float* dr = dlogits + r * cols;
        const int64_t t = targets[r];
        const float L = lse[r];
        if (bad_target<kWarp>(bad, r, t, cols, ignore_index) || t == ignore_index || L == -INFINITY) {
            for (int64_t j = R::lane(); j < cols; j += R::width()) dr[j] = 0.0f;
            continue;
        }
        double s = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) {
            const float e = expf(xr[j] - L);
            dr[j] = e;
            s += e;
        }
        s = row_sum<kWarp>(s);
        const double g = dloss[r];
        const float scale = (float)(g / s);
        const double pt = expf(xr[t] - L);   // the same float value as dr[t]
        for (int64_t j = R::lane(); j < cols; j += R::width())
            // p_t - 1 = -(s - e_t) / s: the sum of the other terms, without cancellation when p_t ~ 1.
            dr[j] = j == t ? (float)(-g * (s - pt) / s) : dr[j] * scale;
    }
}

// Launches kernel<true> (a warp per row) or kernel<false> (a block per row) over `rows` rows.
#define LAUNCH_ROWS(kernel, rows, cols, name, ...)                                                  \
    do {                                                                                            \
        if ((rows) > 0) {                                                                           \
            if ((cols) <= kWarpCols) {                                                              \
                const int64_t b_ = ((rows) + kWarps - 1) / kWarps;                                  \
                kernel<true><<<(unsigned)(b_ < kMaxBlocks ? b_ : kMaxBlocks), kThreads, 0,          \
                               cuda::stream()>>>(__VA_ARGS__);                                      \
            } else {                                                                                \
                kernel<false><<<(unsigned)((rows) < kMaxBlocks ? (rows) : kMaxBlocks), kThreads, 0, \
                                cuda::stream()>>>(__VA_ARGS__);                                     \
            }                                                                                       \
            cuda::check_launch(name);                                                               \
        }                                                                                           \
    } while (0)

// A fresh "no bad row" flag (all ones), enqueued before the kernel that may lower it.
void reset_flag(const cuda::Scratch& s, const char* op) {
    cuda::check_cuda(cudaMemsetAsync(s.as<unsigned long long>(), 0xff, sizeof(unsigned long long), cuda::stream()), op);
}

// Reads the flag back (synchronises) and throws the CPU's RangeError for the first bad row.
void throw_if_bad(const cuda::Scratch& s, const int32_t* targets, int64_t cols, int64_t ignore_index, const char* op) {
    unsigned long long row = 0;
    cuda::check_cuda(cudaMemcpy(&row, s.as<unsigned long long>(), sizeof(row), cudaMemcpyDeviceToHost), op);
    if (row == ULLONG_MAX) return;
    int32_t t = 0;
    cuda::check_cuda(cudaMemcpy(&t, targets + row, sizeof(t), cudaMemcpyDeviceToHost), op);
    throw RangeError(cat("dd2: ", op, ": target ", t, " at row ", row, " is out of range [0, ", cols,
                         ") and is not the ignore index ", ignore_index));
}

}  // namespace

void softmax_forward_f32_cuda(float* y, const float* x, int64_t rows, int64_t cols) {
    if (cols == 0) return;
    LAUNCH_ROWS(softmax_fwd_kernel, rows, cols, "softmax_forward", y, x, rows, cols);
}

void softmax_backward_f32_cuda(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    if (cols == 0) return;
    LAUNCH_ROWS(softmax_bwd_kernel, rows, cols, "softmax_backward", dx, dy, y, rows, cols);
}

void log_softmax_forward_f32_cuda(float* y, const float* x, int64_t rows, int64_t cols) {
    if (cols == 0) return;
    LAUNCH_ROWS(log_softmax_fwd_kernel, rows, cols, "log_softmax_forward", y, x, rows, cols);
}

void log_softmax_backward_f32_cuda(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols) {
    if (cols == 0) return;
    LAUNCH_ROWS(log_softmax_bwd_kernel, rows, cols, "log_softmax_backward", dx, dy, y, rows, cols);
}

void cross_entropy_forward_f32_cuda(float* loss, float* lse, const float* logits, const int32_t* targets,
                                    int64_t rows, int64_t cols, int64_t ignore_index) {
    if (rows == 0) return;
    const char* op = "cross_entropy_forward";
    cuda::Scratch bad(sizeof(unsigned long long));
    reset_flag(bad, op);
    LAUNCH_ROWS(ce_fwd_kernel, rows, cols, op, loss, lse, logits, targets, rows, cols, ignore_index, bad.as<unsigned long long>());
    throw_if_bad(bad, targets, cols, ignore_index, op);
}

void cross_entropy_backward_f32_cuda(float* dlogits, const float* dloss, const float* logits, const float* lse,
                                     const int32_t* targets, int64_t rows, int64_t cols, int64_t ignore_index) {
    if (rows == 0) return;
    const char* op = "cross_entropy_backward";
    cuda::Scratch bad(sizeof(unsigned long long));
    reset_flag(bad, op);
    LAUNCH_ROWS(ce_bwd_kernel, rows, cols, op, dlogits, dloss, logits, lse, targets, rows, cols, ignore_index,
                bad.as<unsigned long long>());
    throw_if_bad(bad, targets, cols, ignore_index, op);
}

}  // namespace dd2
