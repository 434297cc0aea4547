// GEMM on the CPU: OpenBLAS (loaded at run time with dlopen, so the addon loads without it) or the
// built-in blocked, vectorised kernel. Row-major throughout.
//   C[b] (M x N) = alpha * op(A[b]) * op(B[b]) + beta * C[b],   b = 0 .. batch-1
//   op(A) is A (M x K, lda = K) or, with trans_a, A^T where A is stored K x M (lda = M);
//   op(B) is B (K x N, ldb = N) or, with trans_b, B^T where B is stored N x K (ldb = K).
//   stride_a/b/c: elements between consecutive batch matrices (0 broadcasts one matrix to all).
#pragma once
#include <cstdint>

namespace dd2 {

enum class GemmBackend : int { Auto = 0, Builtin = 1, OpenBLAS = 2 };

void gemm_f32_cpu(float* c, const float* a, const float* b, int64_t batch, int64_t M, int64_t N,
                  int64_t K, bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b,
                  int64_t stride_c, float alpha, float beta);

// Forces a backend (for benchmarks and tests); Auto = OpenBLAS when it loaded, else built-in.
// Throws if OpenBLAS is requested but could not be loaded.
void gemm_set_backend(GemmBackend b);
GemmBackend gemm_get_backend();            // the backend Auto resolves to, or the forced one
bool gemm_openblas_available();
const char* gemm_backend_description();    // e.g. "openblas 0.3.21 (libopenblas.so.0)" or "builtin (avx2+fma)"
const char* cpu_features_description();    // e.g. "avx512f avx2 fma"
void gemm_set_threads(int n);              // OpenBLAS thread count (follows set_num_threads)

}  // namespace dd2
