// Built-in GEMM (reference-quality placeholder until the blocked kernel lands): i-k-j loops.
#include "dd2/cpu/gemm-builtin.h"

#include "common/threadpool.h"

namespace dd2 {

void gemm_builtin_f32(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                      float alpha, float beta) {
    parallel_for(M, 1, [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; ++m) {
            float* cr = c + m * N;
            for (int64_t n = 0; n < N; ++n) cr[n] = beta == 0.0f ? 0.0f : beta * cr[n];
            for (int64_t k = 0; k < K; ++k) {
                const float av = alpha * (ta ? a[k * M + m] : a[m * K + k]);
                if (tb) for (int64_t n = 0; n < N; ++n) cr[n] += av * b[n * K + k];
                else for (int64_t n = 0; n < N; ++n) cr[n] += av * b[k * N + n];
            }
        }
    });
}

const char* gemm_builtin_isa() { return "scalar"; }

}  // namespace dd2
