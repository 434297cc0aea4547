// Embedding lookup and gather on the GPU, with deterministic scatter-add backward passes (no float
// atomics). Letters as in dd2/cuda/index.h. Forward passes are grid-stride copies. Backward passes sum
// every destination's contributions in index order, as native/cpu/index.cpp does, either by sorting
// (key = destination, value = source row) pairs stably and letting the first thread of each run of
// equal keys add up its run, or (gather with short index axes) by giving each (o, i) column to a thread.
// Tested by test/kernels/index.test.ts with DD2_DEFAULT_DEVICE=cuda.
#define CCCL_DISABLE_NVTX
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cuda/index.h"

namespace dd2 {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kFits32 = int64_t(1) << 30;   // below this, kernels index with int32 (cheaper division)
// gather_backward sorts when a column thread would loop over more than kSortMinK indices and there are
// too few columns to keep the GPU busy.
constexpr int64_t kSortMinK = 64;
constexpr int64_t kSortMaxCols = 32768;

#define GRID_LOOP_T(I, i, n) \
    for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < (n); i += (I)(blockDim.x * gridDim.x))

// Launches kernel<int32_t> when every index it forms stays below kFits32, else kernel<int64_t>.
#define LAUNCH_IDX(kernel, count, extent, name, ...)                                          \
    do {                                                                                      \
        if ((count) > 0) {                                                                    \
            const unsigned blocks_ = cuda::blocks_for((count), kThreads);                     \
            if ((extent) < kFits32)                                                           \
                kernel<int32_t><<<blocks_, kThreads, 0, cuda::stream()>>>(__VA_ARGS__);       \
            else                                                                              \
                kernel<int64_t><<<blocks_, kThreads, 0, cuda::stream()>>>(__VA_ARGS__);       \
            cuda::check_launch(name);                                                         \
        }                                                                                     \
    } while (0)

__global__ void first_bad_kernel(unsigned long long* first, const int32_t* idx, int64_t count, int64_t limit) {
    DD2_GRID_LOOP(i, count) {
        const int64_t v = idx[i];
        if (v < 0 || v >= limit) atomicMin(first, (unsigned long long)i);
    }
}

// Throws the CPU kernels' RangeError for the first index outside [0, limit); synchronises.
void check_indices(const char* op, const int32_t* idx, int64_t count, int64_t limit) {
    if (count == 0) return;
    cuda::Scratch flag(sizeof(unsigned long long));
    unsigned long long* first = flag.as<unsigned long long>();
    cuda::check_cuda(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), cuda::stream()), op);
    first_bad_kernel<<<cuda::blocks_for(count, kThreads), kThreads, 0, cuda::stream()>>>(first, idx, count, limit);
    cuda::check_launch(op);
    unsigned long long pos = 0;
    cuda::check_cuda(cudaMemcpy(&pos, first, sizeof(pos), cudaMemcpyDeviceToHost), op);
    if (pos == ULLONG_MAX) return;
    int32_t v = 0;
    cuda::check_cuda(cudaMemcpy(&v, idx + pos, sizeof(v), cudaMemcpyDeviceToHost), op);
    throw RangeError(cat("dd2: ", op, ": index ", v, " at position ", pos, " is out of range [0, ", limit, ")"));
}

template <typename I>
__global__ void embedding_fwd_kernel(float* y, const float* w, const int32_t* idx, I total, I dim) {
    GRID_LOOP_T(I, e, total) {
        const I r = e / dim, c = e - r * dim;
        y[e] = w[(I)idx[r] * dim + c];
    }
}

template <typename I>
__global__ void gather_fwd_kernel(float* y, const float* x, const int32_t* idx, I total, I n, I inner, I k) {
    GRID_LOOP_T(I, e, total) {
        const I r = e / inner, i = e - r * inner, o = r / k;
        y[e] = x[(o * n + (I)idx[e]) * inner + i];
    }
}

// One thread per column t = (o, i) of a zeroed dx: it alone writes dx[o, :, i], adding dy in j order.
template <typename I>
__global__ void gather_bwd_columns_kernel(float* dx, const float* dy, const int32_t* idx, I cols, I n, I inner,
                                          I k) {
    GRID_LOOP_T(I, t, cols) {
        const I o = t / inner, i = t - o * inner;
        float* dxo = dx + o * n * inner + i;
        const I base = o * k * inner + i;
        for (I j = 0; j < k; ++j) {
            const I p = base + j * inner;
            dxo[(I)idx[p] * inner] += dy[p];
        }
    }
}

__global__ void iota_kernel(uint32_t* v, int64_t n) { DD2_GRID_LOOP(i, n) v[i] = (uint32_t)i; }

// keys[p] = flat dx position that dy[p] is added to.
template <typename I>
__global__ void gather_keys_kernel(uint32_t* keys, const int32_t* idx, I total, I n, I inner, I k) {
    GRID_LOOP_T(I, p, total) {
        const I r = p / inner, i = p - r * inner, o = r / k;
        keys[p] = (uint32_t)((o * n + (I)idx[p]) * inner + i);
    }
}

// keys/rows: (destination row, source row) pairs sorted stably by key. The thread at column c of the
// first pair of each run of equal keys writes out[key, c] = the sum of src[row, c] over the run, in
// order. Other threads move on at once. The run's end is found first (galloping, then bisection over
// the sorted keys) so that the summing loop has independent loads in flight: long runs (a frequent
// index) are bound by memory throughput rather than by one load's latency per term.
template <typename I>
__global__ void segment_sum_kernel(float* out, const float* src, const uint32_t* keys, const uint32_t* rows,
                                   I count, I total, I width) {
    GRID_LOOP_T(I, e, total) {
        const I s = e / width, c = e - s * width;
        const uint32_t key = keys[s];
        if (s > 0 && keys[s - 1] == key) continue;
        // keys[lo - 1] == key throughout; the loop ends with hi == count or keys[hi] != key.
        I lo = s + 1, hi = s + 1, span = 1;
        while (hi < count && keys[hi] == key) {
            lo = hi + 1;
            span *= 2;   // span < count - s before doubling, so no overflow
            hi = span < count - s ? s + span : count;
        }
        while (lo < hi) {
            const I mid = lo + (hi - lo) / 2;
            if (keys[mid] == key) lo = mid + 1;
            else hi = mid;
        }
        float acc = 0.0f;
#pragma unroll 8
        for (I t = s; t < lo; ++t) acc += src[(I)rows[t] * width + c];
        out[(I)key * width + c] = acc;
    }
}

int key_bits(int64_t limit) {
    int b = 1;
    while (b < 32 && (int64_t(1) << b) < limit) ++b;
    return b;
}

// Stable sort of (keys_in[p], p) by the low `bits` key bits into keys_out / rows_out.
void sort_rows(const uint32_t* keys_in, uint32_t* keys_out, uint32_t* rows_out, int64_t count, int bits,
               const char* op) {
    DD2_CHECK_RANGE(count < INT_MAX, op, ": ", count, " indices are too many to sort on cuda");
    cuda::Scratch rows_in(count * sizeof(uint32_t));
    iota_kernel<<<cuda::blocks_for(count, kThreads), kThreads, 0, cuda::stream()>>>(rows_in.as<uint32_t>(), count);
    cuda::check_launch(op);
    size_t temp_bytes = 0;
    cuda::check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out,
                                                     rows_in.as<const uint32_t>(), rows_out, (int)count, 0, bits,
                                                     cuda::stream()),
                     op);
    cuda::Scratch temp(temp_bytes);
    cuda::check_cuda(cub::DeviceRadixSort::SortPairs(temp.as<void>(), temp_bytes, keys_in, keys_out,
                                                     rows_in.as<const uint32_t>(), rows_out, (int)count, 0, bits,
                                                     cuda::stream()),
                     op);
    cuda::check_launch(op);
}

void zero(float* p, int64_t n, const char* op) {
    if (n > 0) cuda::check_cuda(cudaMemsetAsync(p, 0, (size_t)n * sizeof(float), cuda::stream()), op);
}

}  // namespace

void embedding_forward_f32_cuda(float* y, const float* weight, const int32_t* idx, int64_t n, int64_t dim,
                                int64_t vocab) {
    check_indices("embedding_forward", idx, n, vocab);
    const int64_t total = n * dim;
    LAUNCH_IDX(embedding_fwd_kernel, total, std::max(total, vocab * dim), "embedding_forward", y, weight, idx, total,
               dim);
}

void embedding_backward_f32_cuda(float* dweight, const float* dy, const int32_t* idx, int64_t n, int64_t dim,
                                 int64_t vocab) {
    const char* op = "embedding_backward";
    check_indices(op, idx, n, vocab);
    if (dim == 0 || vocab == 0) return;
    zero(dweight, vocab * dim, op);   // rows that no index selects stay zero
    if (n == 0) return;
    cuda::Scratch keys(n * sizeof(uint32_t)), rows(n * sizeof(uint32_t));
    sort_rows(reinterpret_cast<const uint32_t*>(idx), keys.as<uint32_t>(), rows.as<uint32_t>(), n, key_bits(vocab),
              op);
    const int64_t total = n * dim;
    LAUNCH_IDX(segment_sum_kernel, total, std::max(total, vocab * dim), op, dweight, dy, keys.as<const uint32_t>(),
               rows.as<const uint32_t>(), n, total, dim);
}

void gather_forward_f32_cuda(float* y, const float* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                             int64_t k) {
    const int64_t total = outer * k * inner;
    check_indices("gather_forward", idx, total, n);
    LAUNCH_IDX(gather_fwd_kernel, total, std::max(total, outer * n * inner), "gather_forward", y, x, idx, total, n,
               inner, k);
}

void gather_backward_f32_cuda(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                              int64_t inner, int64_t k) {
    const char* op = "gather_backward";
    const int64_t total = outer * k * inner, xsize = outer * n * inner, cols = outer * inner;
    check_indices(op, idx, total, n);
    zero(dx, xsize, op);
    if (total == 0) return;
    const int64_t extent = std::max(total, xsize);
    if (k > kSortMinK && cols < kSortMaxCols && total < INT_MAX && xsize <= UINT_MAX) {
        cuda::Scratch keys_in(total * sizeof(uint32_t)), keys(total * sizeof(uint32_t)), rows(total * sizeof(uint32_t));
        LAUNCH_IDX(gather_keys_kernel, total, extent, op, keys_in.as<uint32_t>(), idx, total, n, inner, k);
        sort_rows(keys_in.as<const uint32_t>(), keys.as<uint32_t>(), rows.as<uint32_t>(), total, key_bits(xsize), op);
        LAUNCH_IDX(segment_sum_kernel, total, extent, op, dx, dy, keys.as<const uint32_t>(), rows.as<const uint32_t>(),
                   total, total, (int64_t)1);
    } else {
        LAUNCH_IDX(gather_bwd_columns_kernel, cols, extent, op, dx, dy, idx, cols, n, inner, k);
    }
}

}  // namespace dd2
