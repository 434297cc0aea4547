// Random kernels on the GPU (Philox4x32-10 from dd2/philox.h, the CPU's function compiled for the
// device). Uniform, normal and dropout kernels give one Philox block (4 stream elements) to a thread;
// categorical gives one row to a warp, which walks the row in column order in double exactly as
// native/cpu/random.cpp does, so every draw equals the CPU's. Letters: n elements, rows x cols weights.
// Tested by test/kernels/random.test.ts (also with DD2_DEFAULT_DEVICE=cuda, and cpu against cuda).
#include <climits>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/random.h"
#include "dd2/philox.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

inline uint32_t lo32(uint64_t s) { return (uint32_t)s; }
inline uint32_t hi32(uint64_t s) { return (uint32_t)(s >> 32); }

// The Philox blocks holding stream elements [offset, offset + n), n > 0.
struct Blocks {
    uint64_t first;
    int64_t count;
};
Blocks blocks_of(int64_t n, uint64_t offset) {
    const uint64_t first = offset >> 2, last = (offset + (uint64_t)n - 1) >> 2;
    return Blocks{first, (int64_t)(last - first + 1)};
}

// The same 24-bit uniform as philox_uniform, from one 32-bit output.
__device__ __forceinline__ float unit24(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

__global__ void uniform_kernel(float* y, int64_t n, uint32_t k0, uint32_t k1, uint64_t offset, Blocks bl) {
    // Thread b draws block bl.first + b: element g = 4 * block + lane goes to y[g - offset] if in range.
    DD2_GRID_LOOP(b, bl.count) {
        const uint64_t blk = bl.first + (uint64_t)b;
        const U32x4 r = philox4x32_10(blk, k0, k1);
        const int64_t i0 = (int64_t)(blk * 4) - (int64_t)offset;   // negative in a partial first block
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const int64_t i = i0 + lane;
            if (i >= 0 && i < n) y[i] = unit24(r.v[lane]);
        }
    }
}

// Lanes (0, 1) and (2, 3) are Box-Muller pairs: the even lane takes the cosine, the odd the sine
// (the CPU's arithmetic, in double, rounded once to float).
__global__ void normal_kernel(float* y, int64_t n, uint32_t k0, uint32_t k1, uint64_t offset, Blocks bl) {
    DD2_GRID_LOOP(b, bl.count) {
        const uint64_t blk = bl.first + (uint64_t)b;
        const U32x4 r = philox4x32_10(blk, k0, k1);
        const int64_t i0 = (int64_t)(blk * 4) - (int64_t)offset;
#pragma unroll
        for (int p = 0; p < 2; ++p) {
            const int64_t ic = i0 + 2 * p, is = ic + 1;
            if (is < 0 || ic >= n) continue;
            const double u1 = ((double)(r.v[2 * p] >> 8) + 1.0) / 16777216.0;   // (0, 1]
            const double u2 = (double)(r.v[2 * p + 1] >> 8) / 16777216.0;       // [0, 1)
            const double rad = sqrt(-2.0 * log(u1));
            const double ang = 6.283185307179586 * u2;
            double s, c;
            sincos(ang, &s, &c);
            if (ic >= 0) y[ic] = (float)(rad * c);
            if (is < n) y[is] = (float)(rad * s);
        }
    }
}

__global__ void dropout_kernel(float* mask, int64_t n, float p, float keep, uint32_t k0, uint32_t k1,
                               uint64_t offset, Blocks bl) {
    DD2_GRID_LOOP(b, bl.count) {
        const uint64_t blk = bl.first + (uint64_t)b;
        const U32x4 r = philox4x32_10(blk, k0, k1);
        const int64_t i0 = (int64_t)(blk * 4) - (int64_t)offset;
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const int64_t i = i0 + lane;
            if (i >= 0 && i < n) mask[i] = unit24(r.v[lane]) >= p ? keep : 0.0f;
        }
    }
}

// Categorical draws, one warp per row, in two passes.
// Pass 1 validates the row and forms the CPU's sequential double sum: a span of C chunks of 32 weights
// is loaded coalesced (the next span is loaded before the current one is summed, to hide memory
// latency), then every lane adds the span's weights one by one in column order, broadcast by shuffles,
// so all lanes hold the same sums and every branch is warp-uniform. Columns past the end read as 0,
// which leaves a sum unchanged exactly. The running sum after each chunk is saved in `sums`.
// Pass 2: the running sums never decrease (adding a weight >= 0 cannot round below the sum), so the
// CPU's pick, the first column whose running sum exceeds target (necessarily a positive weight), lies
// in the first chunk whose saved sum exceeds target; that chunk is re-summed from the previous saved
// sum, which repeats the CPU's additions bit for bit. No such chunk: the last positive weight.
// A bad row records r * (cols + 1) + (first bad column, or cols for a bad total) with atomicMin: the
// smallest key is the error the CPU throws first. C = 8 for long rows, 1 for short ones.
template <int C>
__device__ __forceinline__ void load_span(float (&v)[C], const float* wr, int64_t cols, int64_t j0, int lane) {
#pragma unroll
    for (int d = 0; d < C; ++d) {
        const int64_t j = j0 + 32 * d + lane;
        v[d] = j < cols ? __ldg(wr + j) : 0.0f;
    }
}

template <int C>
__global__ void categorical_kernel(int32_t* y, const float* __restrict__ w, double* sums, int64_t rows,
                                   int64_t cols, uint32_t k0, uint32_t k1, uint64_t offset,
                                   unsigned long long* err) {
    constexpr int kSpan = 32 * C;
    const int lane = threadIdx.x & 31;
    const int64_t warp0 = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    const int64_t nch = (cols + 31) / 32;
    float cur[C], nxt[C];
    for (int64_t r = warp0; r < rows; r += warps) {
        const float* wr = w + r * cols;
        double* ck = sums + r * nch;
        double total = 0.0;
        int64_t bad = -1, last_pos = 0;
        load_span(cur, wr, cols, 0, lane);
        for (int64_t j0 = 0; j0 < cols && bad < 0; j0 += kSpan) {
            load_span(nxt, wr, cols, j0 + kSpan, lane);
            const int64_t live = (cols - j0 + 31) / 32;   // chunks of this span inside the row
#pragma unroll
            for (int d = 0; d < C; ++d) {
                const unsigned neg = __ballot_sync(kFull, !(cur[d] >= 0.0f));
                if (neg && bad < 0) bad = j0 + 32 * d + __ffs((int)neg) - 1;
            }
#pragma unroll
            for (int d = 0; d < C; ++d) {
                if (d < live && bad < 0) {
                    const unsigned pos = __ballot_sync(kFull, cur[d] > 0.0f);
                    if (pos) last_pos = j0 + 32 * d + 31 - __clz((int)pos);
#pragma unroll
                    for (int k = 0; k < 32; ++k) total += (double)__shfl_sync(kFull, cur[d], k);
                    if (lane == 0) ck[j0 / 32 + d] = total;
                }
                cur[d] = nxt[d];
            }
        }
        if (bad >= 0 || !(total > 0.0 && isfinite(total))) {
            if (lane == 0) atomicMin(err, (unsigned long long)r * (unsigned long long)(cols + 1) +
                                              (unsigned long long)(bad >= 0 ? bad : cols));
            continue;
        }
        const double target = (double)philox_uniform(offset + (uint64_t)r, k0, k1) * total;
        __syncwarp();   // lane 0's saved sums are visible to the whole warp
        int64_t hit = -1;
        for (int64_t c0 = 0; c0 < nch; c0 += 32) {
            const int64_t c = c0 + lane;
            const unsigned over = __ballot_sync(kFull, c < nch && ck[c] > target);
            if (over) {
                hit = c0 + __ffs((int)over) - 1;
                break;
            }
        }
        int64_t pick = -1;
        if (hit >= 0) {
            double acc = hit > 0 ? ck[hit - 1] : 0.0;
            const int64_t j = hit * 32 + lane;
            const float v = j < cols ? wr[j] : 0.0f;
#pragma unroll
            for (int k = 0; k < 32; ++k) {
                const float wk = __shfl_sync(kFull, v, k);
                acc += (double)wk;
                if (wk > 0.0f && pick < 0 && acc > target) pick = hit * 32 + k;
            }
        }
        if (lane == 0) y[r] = (int32_t)(pick >= 0 ? pick : last_pos);   // top-end rounding: last positive
    }
}

}  // namespace

void rng_uniform_cuda(float* y, int64_t n, uint64_t seed, uint64_t offset) {
    if (n <= 0) return;
    const Blocks bl = blocks_of(n, offset);
    uniform_kernel<<<cuda::blocks_for(bl.count, kThreads), kThreads, 0, cuda::stream()>>>(
        y, n, lo32(seed), hi32(seed), offset, bl);
    cuda::check_launch("rng_uniform");
}

void rng_normal_cuda(float* y, int64_t n, uint64_t seed, uint64_t offset) {
    if (n <= 0) return;
    const Blocks bl = blocks_of(n, offset);
    normal_kernel<<<cuda::blocks_for(bl.count, kThreads), kThreads, 0, cuda::stream()>>>(
        y, n, lo32(seed), hi32(seed), offset, bl);
    cuda::check_launch("rng_normal");
}

void rng_dropout_mask_cuda(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) {
    DD2_CHECK_RANGE(p >= 0.0f && p < 1.0f, "dropout probability must be in [0, 1), got ", p);
    if (n <= 0) return;
    const float keep = 1.0f / (1.0f - p);   // rounded on the host exactly as the CPU kernel rounds it
    const Blocks bl = blocks_of(n, offset);
    dropout_kernel<<<cuda::blocks_for(bl.count, kThreads), kThreads, 0, cuda::stream()>>>(
        mask, n, p, keep, lo32(seed), hi32(seed), offset, bl);
    cuda::check_launch("rng_dropout_mask");
}

void rng_categorical_cuda(int32_t* y, const float* w, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset) {
    if (rows <= 0) return;
    const char* op = "rng_categorical";
    // scratch: the error key, then the running sum after every chunk of 32 columns of every row
    const int64_t nch = (cols + 31) / 32;
    const size_t bytes = sizeof(unsigned long long) + (size_t)(rows * nch) * sizeof(double);
    void* scratch = cuda::malloc_bytes(bytes);
    unsigned long long* err = static_cast<unsigned long long*>(scratch);
    double* sums = reinterpret_cast<double*>(err + 1);
    unsigned long long first = ULLONG_MAX;
    cudaError_t e = cudaMemsetAsync(err, 0xff, sizeof(first), cuda::stream());
    if (e == cudaSuccess) {
        const unsigned blocks = cuda::blocks_for(rows, kThreads / 32);
        if (cols > 64)
            categorical_kernel<8><<<blocks, kThreads, 0, cuda::stream()>>>(y, w, sums, rows, cols, lo32(seed),
                                                                           hi32(seed), offset, err);
        else
            categorical_kernel<1><<<blocks, kThreads, 0, cuda::stream()>>>(y, w, sums, rows, cols, lo32(seed),
                                                                           hi32(seed), offset, err);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpy(&first, err, sizeof(first), cudaMemcpyDeviceToHost);
    cuda::free_bytes(scratch, bytes);
    cuda::check_cuda(e, op);
    if (first == ULLONG_MAX) return;
    const int64_t r = (int64_t)(first / (unsigned long long)(cols + 1));
    const int64_t j = (int64_t)(first % (unsigned long long)(cols + 1));
    DD2_CHECK_RANGE(j == cols, "rng_categorical: row ", r, " has a negative or NaN weight at ", j);
    throw RangeError(cat("dd2: rng_categorical: row ", r, " has no positive weight (or an infinite one)"));
}

}  // namespace dd2
