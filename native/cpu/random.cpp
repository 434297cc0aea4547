// Random kernels: Philox streams, Box-Muller normals, inverse-CDF categorical draws, dropout masks.
// Tested by test/kernels/random.test.ts (known-answer vectors, moments, reproducibility).
#include "dd2/cpu/random.h"

#include <cmath>

#include "common/check.h"
#include "common/threadpool.h"
#include "dd2/philox.h"

namespace dd2 {
namespace {

inline uint32_t lo32(uint64_t s) { return (uint32_t)s; }
inline uint32_t hi32(uint64_t s) { return (uint32_t)(s >> 32); }

}  // namespace

void rng_uniform_cpu(float* y, int64_t n, uint64_t seed, uint64_t offset) {
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = philox_uniform(offset + (uint64_t)i, lo32(seed), hi32(seed));
    });
}

void rng_normal_cpu(float* y, int64_t n, uint64_t seed, uint64_t offset) {
    // Element g pairs lanes (2p, 2p+1) of its block, p = (g % 4) / 2: even g takes the cosine branch,
    // odd g the sine branch of the same Box-Muller pair.
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            uint64_t g = offset + (uint64_t)i;
            U32x4 r = philox4x32_10(g >> 2, lo32(seed), hi32(seed));
            int p = (int)((g & 3) >> 1);
            double u1 = ((double)(r.v[2 * p] >> 8) + 1.0) / 16777216.0;   // (0, 1]
            double u2 = (double)(r.v[2 * p + 1] >> 8) / 16777216.0;       // [0, 1)
            double rad = std::sqrt(-2.0 * std::log(u1));
            double ang = 6.283185307179586 * u2;
            y[i] = (float)(rad * ((g & 1) ? std::sin(ang) : std::cos(ang)));
        }
    });
}

void rng_categorical_cpu(int32_t* y, const float* w, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* wr = w + r * cols;
        double total = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
            DD2_CHECK_RANGE(wr[j] >= 0.0f, "rng_categorical: row ", r, " has a negative or NaN weight at ", j);
            total += wr[j];
        }
        DD2_CHECK_RANGE(total > 0.0 && std::isfinite(total), "rng_categorical: row ", r,
                        " has no positive weight (or an infinite one)");
        double target = (double)philox_uniform(offset + (uint64_t)r, lo32(seed), hi32(seed)) * total;
        double acc = 0.0;
        int32_t pick = -1, last_pos = 0;
        for (int64_t j = 0; j < cols; ++j) {
            if (wr[j] > 0.0f) last_pos = (int32_t)j;
            acc += wr[j];
            if (acc > target && wr[j] > 0.0f) {
                pick = (int32_t)j;
                break;
            }
        }
        y[r] = pick >= 0 ? pick : last_pos;   // rounding at the top end falls on the last positive weight
    }
}

void rng_dropout_mask_cpu(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) {
    DD2_CHECK_RANGE(p >= 0.0f && p < 1.0f, "dropout probability must be in [0, 1), got ", p);
    const float keep = 1.0f / (1.0f - p);
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            mask[i] = philox_uniform(offset + (uint64_t)i, lo32(seed), hi32(seed)) >= p ? keep : 0.0f;
    });
}

}  // namespace dd2
