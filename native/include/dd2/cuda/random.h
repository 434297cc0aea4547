// Random kernels on the GPU: the same contracts and the same streams as dd2/cpu/random.h (Philox4x32-10
// from dd2/philox.h; pointers are device memory, every call enqueues on cuda::stream()). Uniforms and
// dropout masks equal the CPU's bit for bit; normals use the same double Box-Muller (CUDA's double
// log/sincos are within 1-2 ulp of glibc's, so the float results agree except in vanishingly rare
// rounding ties); categorical draws sum each row sequentially in double, in column order, as the CPU
// does, so the picks are identical (scratch: 8 bytes per 32 weights). rng_categorical validates on the
// device and synchronises once to read back the first bad row, thrown as the CPU's RangeError.
#pragma once
#include <cstdint>

namespace dd2 {

void rng_uniform_cuda(float* y, int64_t n, uint64_t seed, uint64_t offset);
void rng_normal_cuda(float* y, int64_t n, uint64_t seed, uint64_t offset);
// One draw per row from non-negative weights (rows, cols), row r uses stream element offset + r.
// Throws for a row with negative, NaN or all-zero weights (or an infinite total).
void rng_categorical_cuda(int32_t* y, const float* w, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset);
void rng_dropout_mask_cuda(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset);

}  // namespace dd2
