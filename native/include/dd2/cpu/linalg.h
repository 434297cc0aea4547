// Float64 dense linear algebra on host memory, for the metrics (FID's matrix square root, feature
// covariances, pairwise distances). These work on plain double buffers (JS Float64Arrays), not tensors.
// Backend: LAPACK dsyevd_ / cblas_dgemm from the OpenBLAS library loaded with dlopen
// (DD2_OPENBLAS_LIB, libopenblas.so.0, libopenblas.so), else a built-in implementation
// (Householder tridiagonalisation + implicit QL with Wilkinson shifts; cache-blocked GEMM), which is
// also used when env DD2_LINALG=builtin (or DD2_NO_BLAS) or after linalg_set_backend("builtin").
// Row-major throughout.
#pragma once
#include <cstdint>

namespace dd2 {

enum class LinalgBackend : int { Auto = 0, Builtin = 1, Lapack = 2 };

// Eigendecomposition of the symmetric n x n matrix A (row-major; only the lower triangle, j <= i,
// is read). w (n) receives the eigenvalues in ascending order. With `vectors`, A is overwritten by
// the eigenvectors: row k holds the unit eigenvector of w[k] (i.e. A = V^T with A_in = V diag(w) V^T
// where V's columns are the rows of the output); without, A's contents are destroyed.
// Throws dd2::Error if the iteration fails to converge.
void sym_eig_f64_cpu(int64_t n, double* a, double* w, bool vectors);

// C (M x N) = alpha * op(A) * op(B) + beta * C; op(A) is A (M x K) or, with trans_a, A^T where A is
// stored K x M; op(B) is B (K x N) or, with trans_b, B^T where B is stored N x K. beta == 0 never
// reads C. C must not alias A or B.
void gemm_f64_cpu(double* c, const double* a, const double* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                  bool trans_b, double alpha, double beta);

void linalg_set_backend(LinalgBackend b);     // throws if Lapack is requested but not loaded
LinalgBackend linalg_get_backend();          // the backend Auto resolves to, or the forced one
const char* linalg_backend_description();    // "lapack (libopenblas.so.0: dsyevd_, cblas_dgemm)" / "builtin (...)"

}  // namespace dd2
