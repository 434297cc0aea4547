// Layer, RMS and group normalisation on the GPU, float32, statistics and gradient sums in double, as in
// native/cpu/norm.cpp. Layer norm is group norm with N = rows, C = cols, HW = 1, G = 1: both run over
// "blocks" k = (n, g) of M = C/G * HW contiguous values, a warp per block when M <= kWarpCols, else a
// thread block, with fixed-order shuffle reductions. dw/db: stage 1 writes double partial sums per
// (chunk of rows, column) of the (N, C*HW) view, or per (n, c) plane when HW is large; stage 2 adds them
// per channel in a fixed order. Results are deterministic. Tested by test/kernels/norm.test.ts with
// DD2_DEFAULT_DEVICE=cuda.
#include <algorithm>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/norm.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kWarpCols = 512;    // blocks of up to this many values are handled by one warp
constexpr int64_t kMaxBlocks = 1 << 20;
constexpr int kColRows = 8;           // affine_cols_kernel: 32 columns x kColRows row lanes per block
constexpr int64_t kColTargetBlocks = 1024;

// The threads that share a block of values: one warp (kWarp) or the whole thread block. The grid-stride
// loop over blocks is uniform over the thread block in block mode (reductions call __syncthreads).
template <bool kWarp>
struct Rows {
    __device__ static int lane() { return kWarp ? (int)(threadIdx.x & 31) : (int)threadIdx.x; }
    __device__ static int width() { return kWarp ? 32 : kThreads; }
    __device__ static int64_t first() {
        return kWarp ? (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5) : (int64_t)blockIdx.x;
    }
    __device__ static int64_t step() { return kWarp ? (int64_t)gridDim.x * kWarps : (int64_t)gridDim.x; }
};

// Butterfly sum: every lane ends with the same value (a + b == b + a exactly).
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the row's threads, returned to all of them; block mode adds the warps' sums in warp order.
template <bool kWarp>
__device__ double row_sum(double v) {
    v = warp_sum(v);
    if (kWarp) return v;
    __shared__ double sh[kWarps];
    __syncthreads();   // a previous call's readers are done with sh
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double s = 0.0;
    for (int w = 0; w < kWarps; ++w) s += sh[w];
    return s;
}

// Channel (within the group) of element i of a block: i itself when HW == 1.
template <bool kFlat>
__device__ __forceinline__ int64_t chan(int64_t i, int64_t HW) { return kFlat ? i : i / HW; }

// y = (x - mean) * rstd * w + b over each block k = (n, g) of M = Cg * HW values; w, b (C) optional.
// The affine step is float multiply then float add, rounded separately as on the CPU.
template <bool kWarp, bool kFlat>
__global__ void norm_fwd_kernel(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                int64_t nblk, int64_t M, int64_t Cg, int64_t HW, int64_t G, double eps) {
    using R = Rows<kWarp>;
    for (int64_t k = R::first(); k < nblk; k += R::step()) {
        const float* xb = x + k * M;
        float* yb = y + k * M;
        double s = 0.0;
        for (int64_t i = R::lane(); i < M; i += R::width()) s += xb[i];
        const double mu = M ? row_sum<kWarp>(s) / (double)M : 0.0;
        double v = 0.0;
        for (int64_t i = R::lane(); i < M; i += R::width()) {
            const double d = (double)xb[i] - mu;
            v += d * d;
        }
        v = row_sum<kWarp>(v);
        const double rs = 1.0 / sqrt((M ? v / (double)M : 0.0) + eps);
        if (R::lane() == 0) {
            mean[k] = (float)mu;
            rstd[k] = (float)rs;
        }
        const int64_t g0 = (k % G) * Cg;
        for (int64_t i = R::lane(); i < M; i += R::width()) {
            float o = (float)(((double)xb[i] - mu) * rs);
            const int64_t c = g0 + chan<kFlat>(i, HW);
            if (w) o = __fmul_rn(o, w[c]);
            if (b) o = __fadd_rn(o, b[c]);
            yb[i] = o;
        }
    }
}

// With g = dy * w and xhat = (x - mu) * rstd over a block of M values:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
// The exact block mean is recovered as mean + mean(x - mean) (deviations in double) and written to
// mu (double, one per block) for the dw/db pass when mu is not null. dx may be null.
template <bool kWarp, bool kFlat>
__global__ void norm_bwd_kernel(float* dx, double* mu, const float* dy, const float* x, const float* w,
                                const float* mean, const float* rstd, int64_t nblk, int64_t M, int64_t Cg, int64_t HW,
                                int64_t G) {
    using R = Rows<kWarp>;
    for (int64_t k = R::first(); k < nblk; k += R::step()) {
        const float* xb = x + k * M;
        const float* dyb = dy + k * M;
        const float* wg = w ? w + (k % G) * Cg : nullptr;
        const double mf = mean[k], rs = rstd[k];
        double d = 0.0, sg = 0.0, sgx = 0.0;   // sums of (x - mf), g, g * (x - mf)
        for (int64_t i = R::lane(); i < M; i += R::width()) {
            const float wc = wg ? wg[chan<kFlat>(i, HW)] : 1.0f;
            const double xc = (double)xb[i] - mf, gi = (double)dyb[i] * wc;
            d += xc;
            sg += gi;
            sgx += gi * xc;
        }
        d = row_sum<kWarp>(d);
        sg = row_sum<kWarp>(sg);
        sgx = row_sum<kWarp>(sgx);
        const double shift = M ? d / (double)M : 0.0;
        const double m = mf + shift;
        if (mu && R::lane() == 0) mu[k] = m;
        if (!dx || M == 0) continue;
        const double A = sg / (double)M;                             // mean(g)
        const double B = rs * rs * (sgx - shift * sg) / (double)M;   // rstd * mean(g * xhat)
        float* dxb = dx + k * M;
        for (int64_t i = R::lane(); i < M; i += R::width()) {
            const float wc = wg ? wg[chan<kFlat>(i, HW)] : 1.0f;
            dxb[i] = (float)(rs * ((double)dyb[i] * wc - A - ((double)xb[i] - m) * B));
        }
    }
}

// y = x * rsqrt(mean(x^2) + eps) * w over each row; w optional.
template <bool kWarp>
__global__ void rms_fwd_kernel(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t cols,
                               double eps) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        double ss = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width()) ss += (double)xr[j] * xr[j];
        ss = row_sum<kWarp>(ss);
        const double rs = 1.0 / sqrt((cols ? ss / (double)cols : 0.0) + eps);
        if (R::lane() == 0) rstd[r] = (float)rs;
        for (int64_t j = R::lane(); j < cols; j += R::width()) {
            const float o = (float)(xr[j] * rs);
            yr[j] = w ? __fmul_rn(o, w[j]) : o;
        }
    }
}

// With g = dy * w and xhat = x * rstd: dx = rstd * (g - xhat * mean(g * xhat)).
template <bool kWarp>
__global__ void rms_bwd_kernel(float* dx, const float* dy, const float* x, const float* w, const float* rstd,
                               int64_t rows, int64_t cols) {
    using R = Rows<kWarp>;
    for (int64_t r = R::first(); r < rows; r += R::step()) {
        const float* xr = x + r * cols;
        const float* dyr = dy + r * cols;
        float* dxr = dx + r * cols;
        const double rs = rstd[r];
        double sgx = 0.0;
        for (int64_t j = R::lane(); j < cols; j += R::width())
            sgx += (double)dyr[j] * (w ? w[j] : 1.0f) * xr[j];
        sgx = row_sum<kWarp>(sgx);
        if (cols == 0) continue;
        const double B = rs * rs * sgx / (double)cols;   // rstd * mean(g * xhat)
        for (int64_t j = R::lane(); j < cols; j += R::width())
            dxr[j] = (float)(rs * ((double)dyr[j] * (w ? w[j] : 1.0f) - (double)xr[j] * B));
    }
}

// dw/db stage 1, column layout: the (N, J = C*HW) view, blocks of 32 columns x a chunk of rows; thread
// (tx, ty) sums rows n0 + ty, n0 + ty + kColRows, ... of its column, then row lane 0 adds the kColRows
// sums in order. pw/pb[chunk * J + j]. mu null means 0 (RMS norm); the statistic of (n, j) is
// n * G + (j / HW) / Cg.
__global__ void affine_cols_kernel(double* pw, double* pb, const float* dy, const float* x, const double* mu,
                                   const float* rstd, int64_t N, int64_t J, int64_t HW, int64_t Cg, int64_t G,
                                   int64_t chunk) {
    __shared__ double sa[kColRows][32], sb[kColRows][32];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * 32 + tx;
    const int64_t n0 = (int64_t)blockIdx.y * chunk, n1 = min(N, n0 + chunk);
    double a = 0.0, s = 0.0;
    if (j < J) {
        const int64_t gj = (j / HW) / Cg;
        for (int64_t n = n0 + ty; n < n1; n += kColRows) {
            const int64_t k = n * G + gj;
            const double m = mu ? mu[k] : 0.0, rs = rstd[k];
            const double d = dy[n * J + j];
            a += d * (((double)x[n * J + j] - m) * rs);
            s += d;
        }
    }
    sa[ty][tx] = a;
    sb[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && j < J) {
        for (int r = 1; r < kColRows; ++r) {
            a += sa[r][tx];
            s += sb[r][tx];
        }
        pw[blockIdx.y * J + j] = a;
        pb[blockIdx.y * J + j] = s;
    }
}

// dw/db stage 1, plane layout (HW large): one warp per (n, c) plane of HW contiguous values.
// pw/pb[n * C + c].
__global__ void affine_planes_kernel(double* pw, double* pb, const float* dy, const float* x, const double* mu,
                                     const float* rstd, int64_t N, int64_t C, int64_t HW, int64_t Cg, int64_t G) {
    const int lane = threadIdx.x & 31;
    const int64_t step = (int64_t)gridDim.x * kWarps;
    for (int64_t p = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5); p < N * C; p += step) {
        const int64_t n = p / C, c = p % C, k = n * G + c / Cg;
        const double m = mu ? mu[k] : 0.0, rs = rstd[k];
        const float* dyc = dy + p * HW;
        const float* xc = x + p * HW;
        double a = 0.0, s = 0.0;
        for (int64_t h = lane; h < HW; h += 32) {
            const double d = dyc[h];
            a += d * (((double)xc[h] - m) * rs);
            s += d;
        }
        a = warp_sum(a);
        s = warp_sum(s);
        if (lane == 0) {
            pw[p] = a;
            pb[p] = s;
        }
    }
}

// dw/db stage 2: out[c] = sum over r < R, h < H of part[(r * C + c) * H + h], one warp per channel,
// lanes over (r, h) in order, then the fixed butterfly.
__global__ void affine_finish_kernel(float* dw, float* db, const double* pw, const double* pb, int64_t R, int64_t C,
                                     int64_t H) {
    const int lane = threadIdx.x & 31;
    const int64_t step = (int64_t)gridDim.x * kWarps;
    for (int64_t c = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5); c < C; c += step) {
        double a = 0.0, s = 0.0;
        for (int64_t i = lane; i < R * H; i += 32) {
            const int64_t r = i / H, h = i - r * H, idx = (r * C + c) * H + h;
            a += pw[idx];
            s += pb[idx];
        }
        a = warp_sum(a);
        s = warp_sum(s);
        if (lane == 0) {
            if (dw) dw[c] = (float)a;
            if (db) db[c] = (float)s;
        }
    }
}

unsigned grid_for(int64_t items, int64_t per_block) {
    const int64_t b = std::max<int64_t>(1, (items + per_block - 1) / per_block);
    return (unsigned)std::min(b, kMaxBlocks);
}

// Launches warp_k (a warp per block of `width` values) or block_k (a thread block per block of values).
template <typename... KArgs, typename... Args>
void launch_blocks(void (*warp_k)(KArgs...), void (*block_k)(KArgs...), int64_t nblk, int64_t width,
                   const char* op, Args... args) {
    if (nblk <= 0) return;
    if (width <= kWarpCols) warp_k<<<grid_for(nblk, kWarps), kThreads, 0, cuda::stream()>>>(args...);
    else block_k<<<grid_for(nblk, 1), kThreads, 0, cuda::stream()>>>(args...);
    cuda::check_launch(op);
}

// dw[c] = sum over n, hw of dy * (x - mu[n, g]) * rstd[n, g]; db[c] = sum of dy (either may be null).
void affine_grads(float* dw, float* db, const float* dy, const float* x, const double* mu, const float* rstd,
                  int64_t N, int64_t C, int64_t HW, int64_t G, const char* op) {
    if (!dw && !db) return;
    if (C == 0) return;
    if (N == 0 || HW == 0) {   // empty sums
        if (dw) cuda::check_cuda(cudaMemsetAsync(dw, 0, (size_t)C * sizeof(float), cuda::stream()), op);
        if (db) cuda::check_cuda(cudaMemsetAsync(db, 0, (size_t)C * sizeof(float), cuda::stream()), op);
        return;
    }
    const int64_t Cg = C / G, J = C * HW, tiles = (J + 31) / 32;
    const bool planes = HW >= 32;   // a warp per (n, c) plane; else 32-column tiles x chunks of rows
    int64_t chunk = 1, R = N, H = 1;
    if (!planes) {   // enough blocks to fill the GPU, at least kColRows rows per chunk
        const int64_t want = std::max<int64_t>(1, std::min((N + kColRows - 1) / kColRows, kColTargetBlocks / tiles));
        chunk = (N + want - 1) / want;
        R = (N + chunk - 1) / chunk;
        H = HW;
    }
    const int64_t half = R * C * H;   // partials per output: R * C * H doubles each for dw and db
    cuda::Scratch part((size_t)(2 * half) * sizeof(double));
    double *pw = part.as<double>(), *pb = part.as<double>() + half;
    if (planes)
        affine_planes_kernel<<<grid_for(N * C, kWarps), kThreads, 0, cuda::stream()>>>(pw, pb, dy, x, mu, rstd, N,
                                                                                        C, HW, Cg, G);
    else
        affine_cols_kernel<<<dim3((unsigned)tiles, (unsigned)R), dim3(32, kColRows), 0, cuda::stream()>>>(
            pw, pb, dy, x, mu, rstd, N, J, HW, Cg, G, chunk);
    cuda::check_launch(op);
    affine_finish_kernel<<<grid_for(C, kWarps), kThreads, 0, cuda::stream()>>>(dw, db, pw, pb, R, C, H);
    cuda::check_launch(op);
}

void norm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t N,
                  int64_t C, int64_t HW, int64_t G, double eps, const char* op) {
    const int64_t Cg = C / G, M = Cg * HW, nblk = N * G;
    if (HW == 1)
        launch_blocks(norm_fwd_kernel<true, true>, norm_fwd_kernel<false, true>, nblk, M, op, y, mean, rstd, x, w, b,
                      nblk, M, Cg, HW, G, eps);
    else
        launch_blocks(norm_fwd_kernel<true, false>, norm_fwd_kernel<false, false>, nblk, M, op, y, mean, rstd, x, w,
                      b, nblk, M, Cg, HW, G, eps);
}

void norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                   const float* mean, const float* rstd, int64_t N, int64_t C, int64_t HW, int64_t G, const char* op) {
    const int64_t Cg = C / G, M = Cg * HW, nblk = N * G;
    const bool params = dw || db;
    if (!dx && !params) return;
    cuda::Scratch mu(params ? (size_t)nblk * sizeof(double) : 0);
    double* mup = params ? mu.as<double>() : nullptr;
    if (HW == 1)
        launch_blocks(norm_bwd_kernel<true, true>, norm_bwd_kernel<false, true>, nblk, M, op, dx, mup, dy, x, w, mean,
                      rstd, nblk, M, Cg, HW, G);
    else
        launch_blocks(norm_bwd_kernel<true, false>, norm_bwd_kernel<false, false>, nblk, M, op, dx, mup, dy, x, w,
                      mean, rstd, nblk, M, Cg, HW, G);
    affine_grads(dw, db, dy, x, mup, rstd, N, C, HW, G, op);
}

}  // namespace

void layer_norm_forward_f32_cuda(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                 int64_t rows, int64_t cols, double eps) {
    norm_forward(y, mean, rstd, x, w, b, rows, cols, 1, 1, eps, "layer_norm_forward");
}

void layer_norm_backward_f32_cuda(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                  const float* mean, const float* rstd, int64_t rows, int64_t cols) {
    norm_backward(dx, dw, db, dy, x, w, mean, rstd, rows, cols, 1, 1, "layer_norm_backward");
}

void group_norm_forward_f32_cuda(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                 int64_t N, int64_t C, int64_t HW, int64_t G, double eps) {
    DD2_CHECK_RANGE(G > 0 && C % G == 0, "group_norm_forward: ", C, " channels do not split into ", G, " groups");
    norm_forward(y, mean, rstd, x, w, b, N, C, HW, G, eps, "group_norm_forward");
}

void group_norm_backward_f32_cuda(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                  const float* mean, const float* rstd, int64_t N, int64_t C, int64_t HW, int64_t G) {
    DD2_CHECK_RANGE(G > 0 && C % G == 0, "group_norm_backward: ", C, " channels do not split into ", G, " groups");
    norm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C, HW, G, "group_norm_backward");
}

void rms_norm_forward_f32_cuda(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t cols,
                               double eps) {
    launch_blocks(rms_fwd_kernel<true>, rms_fwd_kernel<false>, rows, cols, "rms_norm_forward", y, rstd, x, w, rows,
                  cols, eps);
}

void rms_norm_backward_f32_cuda(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                const float* rstd, int64_t rows, int64_t cols) {
    if (dx)
        launch_blocks(rms_bwd_kernel<true>, rms_bwd_kernel<false>, rows, cols, "rms_norm_backward", dx, dy, x, w,
                      rstd, rows, cols);
    affine_grads(dw, nullptr, dy, x, nullptr, rstd, rows, cols, 1, 1, "rms_norm_backward");
}

}  // namespace dd2
