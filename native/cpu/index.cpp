// Embedding lookup and gather kernels with their scatter-add backward passes. Backward passes split the
// destination into disjoint blocks (vocabulary rows x column blocks, or (outer, column block)), so each
// task owns what it writes: no atomics, and every sum runs in index order (results are deterministic).
// Tested by test/kernels/index.test.ts against test/ref/index.ts.
#include "dd2/cpu/index.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "common/threadpool.h"

namespace dd2 {
namespace {

constexpr int64_t kGrain = 1 << 15;   // elements of work below which a call runs on one thread
constexpr int64_t kColBlock = 256;    // columns per backward task (1 KB of floats)

// Throws RangeError for the first index outside [0, limit). Runs before any thread starts: workers
// must not throw.
void check_indices(const char* op, const int32_t* idx, int64_t count, int64_t limit) {
    for (int64_t i = 0; i < count; ++i) {
        if (idx[i] < 0 || idx[i] >= limit) {
            throw RangeError(cat("dd2: ", op, ": index ", idx[i], " at position ", i, " is out of range [0, ",
                                 limit, ")"));
        }
    }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void embedding_forward_f32_cpu(float* y, const float* weight, const int32_t* idx, int64_t n, int64_t dim,
                               int64_t vocab) {
    check_indices("embedding_forward", idx, n, vocab);
    if (dim == 0) return;
    parallel_for(n, std::max<int64_t>(1, kGrain / dim), [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) std::memcpy(y + i * dim, weight + idx[i] * dim, sizeof(float) * dim);
    });
}

void embedding_backward_f32_cpu(float* dweight, const float* dy, const int32_t* idx, int64_t n, int64_t dim,
                                int64_t vocab) {
    check_indices("embedding_backward", idx, n, vocab);
    if (dim == 0 || vocab == 0) return;
    // Tasks: (range of vocabulary rows) x (block of columns). Each task zeroes its block, then scans all
    // indices and adds the dy rows that land in its range; the scan costs n per task, small next to
    // the n * dim additions.
    const int64_t nranges = std::min<int64_t>(vocab, 4 * (int64_t)num_threads());
    const int64_t rstep = ceil_div(vocab, nranges);
    const int64_t ncb = ceil_div(dim, kColBlock);
    const int64_t ntasks = ceil_div(vocab, rstep) * ncb;
    const int64_t work = (n + vocab) * dim;
    parallel_for(ntasks, work < kGrain ? ntasks : 1, [=](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
            const int64_t r0 = (t / ncb) * rstep, r1 = std::min(vocab, r0 + rstep);
            const int64_t c0 = (t % ncb) * kColBlock, c1 = std::min(dim, c0 + kColBlock);
            for (int64_t v = r0; v < r1; ++v) std::memset(dweight + v * dim + c0, 0, sizeof(float) * (c1 - c0));
            for (int64_t i = 0; i < n; ++i) {
                const int64_t v = idx[i];
                if (v < r0 || v >= r1) continue;
                float* dst = dweight + v * dim;
                const float* src = dy + i * dim;
                for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
            }
        }
    });
}

void gather_forward_f32_cpu(float* y, const float* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                            int64_t k) {
    check_indices("gather_forward", idx, outer * k * inner, n);
    if (inner == 0) return;
    // One task row per (o, j): y[o, j, :] reads x[o, idx[o, j, i], i] for each i.
    parallel_for(outer * k, std::max<int64_t>(1, kGrain / inner), [=](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t o = r / k;
            const float* xo = x + o * n * inner;
            const int32_t* ir = idx + r * inner;
            float* yr = y + r * inner;
            for (int64_t i = 0; i < inner; ++i) yr[i] = xo[(int64_t)ir[i] * inner + i];
        }
    });
}

void gather_backward_f32_cpu(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                             int64_t inner, int64_t k) {
    check_indices("gather_backward", idx, outer * k * inner, n);
    if (inner == 0 || outer == 0) return;
    // Tasks: (o, block of inner columns). A task owns dx[o, :, block]: indices move along n only, so
    // column i of dy only ever reaches column i of dx.
    const int64_t ncb = ceil_div(inner, kColBlock);
    const int64_t work = outer * (n + k) * inner;
    parallel_for(outer * ncb, work < kGrain ? outer * ncb : 1, [=](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
            const int64_t o = t / ncb;
            const int64_t c0 = (t % ncb) * kColBlock, c1 = std::min(inner, c0 + kColBlock);
            float* dxo = dx + o * n * inner;
            for (int64_t m = 0; m < n; ++m) std::memset(dxo + m * inner + c0, 0, sizeof(float) * (c1 - c0));
            for (int64_t j = 0; j < k; ++j) {
                const int64_t r = o * k + j;
                const int32_t* ir = idx + r * inner;
                const float* dyr = dy + r * inner;
                for (int64_t i = c0; i < c1; ++i) dxo[(int64_t)ir[i] * inner + i] += dyr[i];
            }
        }
    });
}

}  // namespace dd2
