// Random kernels on the CPU (Philox4x32-10, see dd2/philox.h). `offset` is the stream position of
// element 0; callers advance it by the number of elements drawn so streams never overlap.
#pragma once
#include <cstdint>

namespace dd2 {

void rng_uniform_cpu(float* y, int64_t n, uint64_t seed, uint64_t offset);
void rng_normal_cpu(float* y, int64_t n, uint64_t seed, uint64_t offset);
// One draw per row from non-negative weights (rows, cols), row r uses stream element offset + r.
// Throws for a row with negative, NaN or all-zero weights.
void rng_categorical_cpu(int32_t* y, const float* w, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset);
void rng_dropout_mask_cpu(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset);

}  // namespace dd2
