// Float64 symmetric eigendecomposition and GEMM on host buffers (see dd2/cpu/linalg.h).
// LAPACK path: dsyevd_ (divide and conquer) and cblas_dgemm, resolved with dlopen from OpenBLAS (Debian's
// libopenblas0 bundles LAPACK). Built-in path, used when those are absent or forced:
//   1. Householder tridiagonalisation T = Q^T A Q on the full symmetric matrix, one reflector per column.
//      The rank-2 update of step k and the matrix-vector product of step k+1 share one pass over the
//      trailing block, parallel over its rows.
//   2. Q^T accumulated from the right, H_{n-3} ... H_0, row by row (each row: a dot and an axpy).
//   3. Implicit QL with Wilkinson shifts on T (the classic tql2 / tqli scheme). The eigenvectors are kept
//      transposed (row k = vector k), so a plane rotation combines two contiguous rows; the rotations of
//      one sweep are recorded and then applied in column chunks, in parallel, with the carried row in L1.
//   4. Eigenvalues sorted ascending, rows permuted to match.
// The hot loops are compiled twice (AVX2+FMA and baseline) and picked at load time (target_clones),
// as the build has no -march flags.
#include "dd2/cpu/linalg.h"

#include "common/openblas-lib.h"

#include <dlfcn.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DD2_LINALG_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define DD2_LINALG_CLONES
#endif

namespace dd2 {
namespace {

// ---- LAPACK / CBLAS through dlopen ----
// Fortran ABI (gfortran): every argument by pointer, hidden string lengths appended as size_t.
using dsyevd_fn = void (*)(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                           double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t, size_t);
using dgemm_fn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double,
                          double*, int);

struct Lapack {
    dsyevd_fn dsyevd = nullptr;
    dgemm_fn dgemm = nullptr;
    std::string desc, why;
};

Lapack& lapack() {
    static Lapack lp;
    static std::once_flag once;
    std::call_once(once, [] {
        const OpenBlasLib& lib = openblas_lib();
        if (!lib.handle) {
            lp.why = lib.why;
            return;
        }
        void* h = lib.handle;
        const char* used = lib.name.c_str();
        lp.dsyevd = reinterpret_cast<dsyevd_fn>(dlsym(h, "dsyevd_"));
        lp.dgemm = reinterpret_cast<dgemm_fn>(dlsym(h, "cblas_dgemm"));
        if (!lp.dsyevd || !lp.dgemm) {
            lp.why += std::string(used) + " lacks " + (!lp.dsyevd ? "dsyevd_ " : "") + (!lp.dgemm ? "cblas_dgemm" : "");
            lp.dsyevd = nullptr;
            lp.dgemm = nullptr;
            return;
        }
        lp.desc = std::string("lapack (") + used + ": dsyevd_, cblas_dgemm)";
    });
    return lp;
}

LinalgBackend initial_backend() {
    const char* e = std::getenv("DD2_LINALG");
    if (e && std::string(e) == "builtin") return LinalgBackend::Builtin;
    if (e && std::string(e) == "lapack") return LinalgBackend::Lapack;
    return LinalgBackend::Auto;
}

LinalgBackend g_forced = initial_backend();

// ---- hot loops (vectorisable, cloned per ISA) ----

DD2_LINALG_CLONES double dot(const double* __restrict a, const double* __restrict b, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += a[j] * b[j];
        s1 += a[j + 1] * b[j + 1];
        s2 += a[j + 2] * b[j + 2];
        s3 += a[j + 3] * b[j + 3];
    }
    for (; j < n; ++j) s0 += a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

DD2_LINALG_CLONES void axpy(double* __restrict y, double alpha, const double* __restrict x, int64_t n) {
    for (int64_t j = 0; j < n; ++j) y[j] += alpha * x[j];
}

// row[j] -= vi * w[j] + wi * v[j]  (j < len): one row of the symmetric rank-2 update.
DD2_LINALG_CLONES void rank2_row(double* __restrict row, const double* __restrict v, const double* __restrict w,
                                 double vi, double wi, int64_t len) {
    for (int64_t j = 0; j < len; ++j) row[j] -= vi * w[j] + wi * v[j];
}

// The rotations of one QL sweep, i = m-1 down to l, applied to columns [j0, j1) of the transposed
// eigenvector rows: row_{i+1} <- s*row_i + c*row_{i+1}; row_i <- c*row_i - s*row_{i+1}.
// rc/rs[i - l] hold the cosines/sines. Row i's new value is carried to the next rotation in `carry`.
DD2_LINALG_CLONES void rotate_chunk(double* z, int64_t ld, int64_t j0, int64_t j1, int64_t l, int64_t m,
                                    const double* rc, const double* rs) {
    constexpr int64_t kW = 128;
    double carry[kW];
    for (int64_t c0 = j0; c0 < j1; c0 += kW) {
        const int64_t w = std::min(kW, j1 - c0);
        double* rm = z + m * ld + c0;
        for (int64_t j = 0; j < w; ++j) carry[j] = rm[j];   // row i+1 for i = m-1
        for (int64_t i = m - 1; i >= l; --i) {
            const double c = rc[i - l], s = rs[i - l];
            double* __restrict ri = z + i * ld + c0;
            double* __restrict rn = z + (i + 1) * ld + c0;
            for (int64_t j = 0; j < w; ++j) {
                const double zi = ri[j], f = carry[j];
                rn[j] = s * zi + c * f;
                carry[j] = c * zi - s * f;
            }
        }
        double* rl = z + l * ld + c0;
        for (int64_t j = 0; j < w; ++j) rl[j] = carry[j];
    }
}

// C[i0..i1) (+)= A[i0..i1) * B with A (M x K, lda K), B (K x N, ldb N) row-major, four rows at a time,
// blocked over K and N so the B panel stays in L2 and the C rows in L1.
DD2_LINALG_CLONES void gemm_rows(double* __restrict c, const double* __restrict a, const double* __restrict b,
                                 int64_t i0, int64_t i1, int64_t N, int64_t K, double alpha) {
    constexpr int64_t kKc = 128, kNc = 512;
    for (int64_t n0 = 0; n0 < N; n0 += kNc) {
        const int64_t nw = std::min(kNc, N - n0);
        for (int64_t k0 = 0; k0 < K; k0 += kKc) {
            const int64_t k1 = std::min(K, k0 + kKc);
            int64_t i = i0;
            for (; i + 4 <= i1; i += 4) {
                double* c0 = c + i * N + n0;
                double* c1 = c0 + N;
                double* c2 = c1 + N;
                double* c3 = c2 + N;
                for (int64_t k = k0; k < k1; ++k) {
                    const double a0 = alpha * a[i * K + k], a1 = alpha * a[(i + 1) * K + k];
                    const double a2 = alpha * a[(i + 2) * K + k], a3 = alpha * a[(i + 3) * K + k];
                    const double* bk = b + k * N + n0;
                    for (int64_t j = 0; j < nw; ++j) {
                        const double bj = bk[j];
                        c0[j] += a0 * bj;
                        c1[j] += a1 * bj;
                        c2[j] += a2 * bj;
                        c3[j] += a3 * bj;
                    }
                }
            }
            for (; i < i1; ++i) {
                double* ci = c + i * N + n0;
                for (int64_t k = k0; k < k1; ++k) {
                    const double ai = alpha * a[i * K + k];
                    const double* bk = b + k * N + n0;
                    for (int64_t j = 0; j < nw; ++j) ci[j] += ai * bk[j];
                }
            }
        }
    }
}

// ---- built-in GEMM ----

// Rows x cols row-major src -> its transpose (cols x rows), in tiles.
void transpose_into(double* dst, const double* src, int64_t rows, int64_t cols) {
    constexpr int64_t kT = 32;
    parallel_for((rows + kT - 1) / kT, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t rb = b0 * kT; rb < std::min(rows, b1 * kT); rb += kT)
            for (int64_t cb = 0; cb < cols; cb += kT)
                for (int64_t r = rb; r < std::min(rows, rb + kT); ++r)
                    for (int64_t q = cb; q < std::min(cols, cb + kT); ++q) dst[q * rows + r] = src[r * cols + q];
    });
}

void gemm_builtin(double* c, const double* a, const double* b, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                  double alpha, double beta) {
    // Scale C by beta first (beta == 0 overwrites, so NaNs in C do not propagate).
    parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, N)), [&](int64_t i0, int64_t i1) {
        double* p = c + i0 * N;
        const int64_t len = (i1 - i0) * N;
        if (beta == 0.0) std::fill(p, p + len, 0.0);
        else if (beta != 1.0) for (int64_t j = 0; j < len; ++j) p[j] *= beta;
    });
    if (K == 0 || alpha == 0.0) return;
    std::vector<double> at, bt;
    if (ta) {   // A stored K x M
        at.resize((size_t)(M * K));
        transpose_into(at.data(), a, K, M);
        a = at.data();
    }
    if (tb) {   // B stored N x K
        bt.resize((size_t)(K * N));
        transpose_into(bt.data(), b, N, K);
        b = bt.data();
    }
    const int64_t rows_per_job = 16;
    parallel_for((M + rows_per_job - 1) / rows_per_job, 1, [&](int64_t j0, int64_t j1) {
        gemm_rows(c, a, b, j0 * rows_per_job, std::min(M, j1 * rows_per_job), N, K, alpha);
    });
}

// ---- built-in symmetric eigensolver ----

// Householder reflector H = I - tau v v^T (v[0] = 1) with H x = beta e_0, for x of length m (dlarfg).
// x is overwritten by v. Returns tau; beta through the reference.
double householder(double* x, int64_t m, double& beta) {
    const double alpha = x[0];
    double scale = 0, ssq = 1;   // ||x[1:]|| without overflow
    for (int64_t j = 1; j < m; ++j) {
        if (x[j] == 0.0) continue;
        const double ax = std::fabs(x[j]);
        if (scale < ax) {
            ssq = 1 + ssq * (scale / ax) * (scale / ax);
            scale = ax;
        } else {
            ssq += (ax / scale) * (ax / scale);
        }
    }
    const double xnorm = scale * std::sqrt(ssq);
    x[0] = 1.0;
    if (xnorm == 0.0) {
        beta = alpha;
        for (int64_t j = 1; j < m; ++j) x[j] = 0.0;
        return 0.0;
    }
    beta = -std::copysign(std::hypot(alpha, xnorm), alpha);
    const double tau = (beta - alpha) / beta;
    const double inv = 1.0 / (alpha - beta);
    for (int64_t j = 1; j < m; ++j) x[j] *= inv;
    return tau;
}

constexpr int64_t kRowGrain = 8;
constexpr int64_t kQtBlock = 8;   // rows of Q^T formed together

// Reduces the symmetric a (n x n, both triangles valid) to tridiagonal form: d (n) diagonal, e (n)
// sub-diagonal (e[n-1] = 0). Reflector k (acting on indices k+1..n-1) is left in row k:
// a[k, k+1..n-1] = v_k (a[k, k+1] = 1), tau[k] its scale.
void tridiagonalise(int64_t n, double* a, double* d, double* e, double* tau) {
    std::fill(e, e + n, 0.0);
    std::fill(tau, tau + n, 0.0);
    if (n <= 2) {
        for (int64_t i = 0; i < n; ++i) d[i] = a[i * n + i];
        if (n == 2) e[0] = a[1 * n + 0];
        return;
    }
    std::vector<double> p(n), w(n);
    // Reflector of step 0 and p = tau A22 v by a plain pass.
    double beta = 0;
    tau[0] = householder(a + 0 * n + 1, n - 1, beta);
    e[0] = beta;
    {
        const double* v = a + 1;
        const double t = tau[0];
        parallel_for(n - 1, kRowGrain, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) p[r] = t * dot(a + (r + 1) * n + 1, v, n - 1);
        });
    }
    for (int64_t k = 0; k <= n - 3; ++k) {
        d[k] = a[k * n + k];
        const int64_t m = n - k - 1;                 // trailing block rows/cols k+1 .. n-1
        const double* v = a + k * n + k + 1;         // v_k (m)
        const double t = tau[k];
        // w = p - (tau/2)(p.v) v
        const double K = 0.5 * t * dot(p.data(), v, m);
        for (int64_t j = 0; j < m; ++j) w[j] = p[j] - K * v[j];
        double* base = a + (k + 1) * n + (k + 1);    // A22[0, 0]
        // Row k+1 first: the next reflector is built from it.
        if (t != 0.0) rank2_row(base, v, w.data(), v[0], w[0], m);
        if (k + 1 > n - 3) {
            // Last step: rows k+2.. only need the update.
            if (t != 0.0)
                for (int64_t r = 1; r < m; ++r) rank2_row(base + r * n, v, w.data(), v[r], w[r], m);
            break;
        }
        // Next reflector from row k+1, columns k+2..n-1.
        double b2 = 0;
        tau[k + 1] = householder(base + 1, m - 1, b2);
        e[k + 1] = b2;
        const double* v2 = base + 1;
        const double t2 = tau[k + 1];
        // Rows k+2..n-1: finish this step's update, then p' = tau' A22' v'.
        parallel_for(m - 1, kRowGrain, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0 + 1; r < r1 + 1; ++r) {
                double* row = base + r * n;
                if (t != 0.0) rank2_row(row, v, w.data(), v[r], w[r], m);
                p[r - 1] = t2 * dot(row + 1, v2, m - 1);
            }
        });
    }
    d[n - 2] = a[(n - 2) * n + (n - 2)];
    d[n - 1] = a[(n - 1) * n + (n - 1)];
    e[n - 2] = a[(n - 1) * n + (n - 2)];
}

// Rows r0..r1 of z = Q^T = H_{n-3} ... H_0 (built from the reflectors left in a by tridiagonalise),
// i.e. e_r H_{n-3} ... H_0: each row is independent, so a block of rows takes every reflector in
// turn while it sits in cache, and each reflector is read once per block. Row r is untouched by H_k
// for k >= r (v_k lives on k+1..n-1), so reflector k starts at the first row of the block above k.
DD2_LINALG_CLONES void qt_rows(int64_t n, const double* a, const double* tau, double* z, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        std::fill(z + r * n, z + (r + 1) * n, 0.0);
        z[r * n + r] = 1.0;
    }
    double s[kQtBlock];
    for (int64_t k = std::min(n - 3, r1 - 2); k >= 0; --k) {
        const double t = tau[k];
        if (t == 0.0) continue;
        const int64_t m = n - k - 1, first = std::max(r0, k + 1), cnt = r1 - first;
        const double* v = a + k * n + k + 1;
        double* rows = z + first * n + k + 1;
        for (int64_t q = 0; q < cnt; ++q) s[q] = -t * dot(rows + q * n, v, m);
        for (int64_t q = 0; q < cnt; ++q) axpy(rows + q * n, s[q], v, m);
    }
}

void form_qt(int64_t n, const double* a, const double* tau, double* z) {
    parallel_for((n + kQtBlock - 1) / kQtBlock, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) qt_rows(n, a, tau, z, b * kQtBlock, std::min(n, (b + 1) * kQtBlock));
    });
}

// Plane rotations recorded over many QL sweeps, applied to the eigenvector rows in column strips:
// each strip (the touched rows x kStrip columns) is packed contiguously so it stays in L2 while every
// recorded sweep passes over it. Flushed when the record grows past kMaxRotations.
class RotationLog {
public:
    RotationLog(int64_t n, double* z) : n_(n), z_(z) {}
    // Rotations i = m-1 down to lo of one sweep; c[i - lo], s[i - lo].
    void add(int64_t lo, int64_t m, const double* c, const double* s) {
        if (lo >= m) return;
        sweeps_.push_back({lo, m, (int64_t)c_.size()});
        c_.insert(c_.end(), c, c + (m - lo));
        s_.insert(s_.end(), s, s + (m - lo));
        if ((int64_t)c_.size() >= kMaxRotations) flush();
    }
    void flush() {
        if (sweeps_.empty()) return;
        int64_t lo = n_, hi = 0;   // rows touched: lo .. hi-1
        for (const Sweep& w : sweeps_) {
            lo = std::min(lo, w.lo);
            hi = std::max(hi, w.m + 1);
        }
        const int64_t rows = hi - lo;
        parallel_for((n_ + kStrip - 1) / kStrip, 1, [&](int64_t b0, int64_t b1) {
            std::vector<double> buf((size_t)(rows * kStrip));
            for (int64_t b = b0; b < b1; ++b) {
                const int64_t c0 = b * kStrip, w = std::min(kStrip, n_ - c0);
                for (int64_t r = 0; r < rows; ++r)
                    std::memcpy(buf.data() + r * kStrip, z_ + (lo + r) * n_ + c0, sizeof(double) * w);
                for (const Sweep& sw : sweeps_)   // buf row r is z row lo + r
                    rotate_chunk(buf.data(), kStrip, 0, w, sw.lo - lo, sw.m - lo, c_.data() + sw.off,
                                 s_.data() + sw.off);
                for (int64_t r = 0; r < rows; ++r)
                    std::memcpy(z_ + (lo + r) * n_ + c0, buf.data() + r * kStrip, sizeof(double) * w);
            }
        });
        sweeps_.clear();
        c_.clear();
        s_.clear();
    }

private:
    static constexpr int64_t kStrip = 32, kMaxRotations = 1 << 22;
    struct Sweep {
        int64_t lo, m, off;
    };
    int64_t n_;
    double* z_;
    std::vector<Sweep> sweeps_;
    std::vector<double> c_, s_;
};

// Implicit QL with Wilkinson shifts on the tridiagonal (d, e); with z, the rotations are applied to
// its rows (z row k = eigenvector k, transposed storage). d ends unsorted.
void tridiagonal_ql(int64_t n, double* d, double* e, double* z) {
    std::vector<double> rc, rs;
    RotationLog log(n, z);
    if (z) {
        rc.resize(n);
        rs.resize(n);
    }
    const double eps = DBL_EPSILON;
    for (int64_t l = 0; l < n; ++l) {
        int iter = 0;
        int64_t m;
        for (;;) {
            for (m = l; m < n - 1; ++m) {
                const double dd = std::fabs(d[m]) + std::fabs(d[m + 1]);
                if (std::fabs(e[m]) <= eps * dd || std::fabs(e[m]) < DBL_MIN) break;
            }
            if (m == l) break;
            DD2_CHECK(++iter <= 60, "sym_eig_f64 (builtin): QL iteration did not converge for eigenvalue ", l,
                      " of ", n, " (input contains NaN/Inf or is not symmetric?)");
            double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            double r = std::hypot(g, 1.0);
            g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
            double s = 1, c = 1, p = 0;
            int64_t i;
            bool underflow = false;
            for (i = m - 1; i >= l; --i) {
                const double f = s * e[i], b = c * e[i];
                r = std::hypot(f, g);
                e[i + 1] = r;
                if (r == 0.0) {   // recover from underflow: deflate and restart
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                if (z) {
                    rc[i - l] = c;
                    rs[i - l] = s;
                }
            }
            if (z) {
                // Rotations i = m-1 .. lo were made (lo > l after an underflow).
                const int64_t lo = underflow ? i + 1 : l;
                log.add(lo, m, rc.data() + (lo - l), rs.data() + (lo - l));
            }
            if (underflow) continue;
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    if (z) log.flush();
}

void sym_eig_builtin(int64_t n, double* a, double* w, bool vectors) {
    // Symmetrise from the lower triangle (the triangle LAPACK reads in this layout).
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) a[j * n + i] = a[i * n + j];
    std::vector<double> e(n), tau(n);
    tridiagonalise(n, a, w, e.data(), tau.data());
    if (!vectors) {
        tridiagonal_ql(n, w, e.data(), nullptr);
        std::sort(w, w + n);
        return;
    }
    std::vector<double> z((size_t)(n * n));
    form_qt(n, a, tau.data(), z.data());
    tridiagonal_ql(n, w, e.data(), z.data());
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return w[x] < w[y]; });
    std::vector<double> ws(w, w + n);
    for (int64_t k = 0; k < n; ++k) w[k] = ws[order[k]];
    parallel_for(n, kRowGrain, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) std::memcpy(a + k * n, z.data() + order[k] * n, sizeof(double) * n);
    });
}

void sym_eig_lapack(int64_t n, double* a, double* w, bool vectors) {
    DD2_CHECK(n <= 46340, "sym_eig_f64: n = ", n, " is too large for 32-bit LAPACK");
    const char jobz = vectors ? 'V' : 'N', uplo = 'U';   // column-major 'U' = row-major lower triangle
    const int ni = (int)n, lda = std::max(1, ni);
    int info = 0, lwork = -1, liwork = -1, iwq = 0;
    double wq = 0;
    lapack().dsyevd(&jobz, &uplo, &ni, a, &lda, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
    DD2_CHECK(info == 0, "sym_eig_f64: dsyevd_ workspace query failed (info ", info, ")");
    lwork = std::max(1, (int)wq);
    liwork = std::max(1, iwq);
    std::vector<double> work((size_t)lwork);
    std::vector<int> iwork((size_t)liwork);
    lapack().dsyevd(&jobz, &uplo, &ni, a, &lda, w, work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
    DD2_CHECK(info >= 0, "sym_eig_f64: dsyevd_ rejected argument ", -info);
    DD2_CHECK(info == 0, "sym_eig_f64: dsyevd_ failed to converge (info ", info,
              "; input contains NaN/Inf or is not symmetric?)");
}

bool use_lapack() { return linalg_get_backend() == LinalgBackend::Lapack; }

}  // namespace

void linalg_set_backend(LinalgBackend b) {
    DD2_CHECK(b != LinalgBackend::Lapack || lapack().dsyevd != nullptr,
              "linalg: LAPACK requested but not loaded: ", lapack().why);
    g_forced = b;
}

LinalgBackend linalg_get_backend() {
    if (g_forced == LinalgBackend::Builtin) return LinalgBackend::Builtin;
    if (lapack().dsyevd) return LinalgBackend::Lapack;
    DD2_CHECK(g_forced != LinalgBackend::Lapack, "linalg: DD2_LINALG=lapack but LAPACK is not loaded: ", lapack().why);
    return LinalgBackend::Builtin;
}

const char* linalg_backend_description() {
    static std::string s;
    if (linalg_get_backend() == LinalgBackend::Lapack) s = lapack().desc;
    else s = std::string("builtin (Householder + implicit QL, ") + std::to_string(num_threads()) + " threads)" +
             (g_forced == LinalgBackend::Builtin ? "; forced" : "; LAPACK not loaded: " + lapack().why);
    return s.c_str();
}

void sym_eig_f64_cpu(int64_t n, double* a, double* w, bool vectors) {
    DD2_CHECK_RANGE(n >= 0, "sym_eig_f64: negative size ", n);
    if (n == 0) return;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j <= i; ++j)
            DD2_CHECK(std::isfinite(a[i * n + j]), "sym_eig_f64: matrix entry (", i, ", ", j, ") is ", a[i * n + j],
                      "; expected finite values");
    if (use_lapack()) sym_eig_lapack(n, a, w, vectors);
    else sym_eig_builtin(n, a, w, vectors);
}

void gemm_f64_cpu(double* c, const double* a, const double* b, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                  double alpha, double beta) {
    DD2_CHECK_RANGE(M >= 0 && N >= 0 && K >= 0, "gemm_f64: negative size");
    if (M == 0 || N == 0) return;
    if (use_lapack() && M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX && K > 0) {
        // CBLAS: RowMajor = 101, NoTrans = 111, Trans = 112.
        lapack().dgemm(101, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, alpha, a, (int)(ta ? M : K), b,
                       (int)(tb ? K : N), beta, c, (int)N);
        return;
    }
    gemm_builtin(c, a, b, M, N, K, ta, tb, alpha, beta);
}

}  // namespace dd2
