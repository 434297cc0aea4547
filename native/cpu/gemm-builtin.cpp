// Built-in SGEMM (used when OpenBLAS is absent or forced): GotoBLAS/BLIS structure. C is cut into
// tiles, one per pool job; within a tile: N in nc blocks -> K in kc blocks (pack the kc x nc block of
// op(B) into NR-wide panels, kept in L2) -> M in MR-row micro-panels (pack MR x kc of op(A), kept in
// L1) -> NR-wide panels -> register-blocked micro-kernel. Packing absorbs transposes and zero-pads edges.
// Micro-kernels: AVX-512 12x32, AVX2+FMA 6x16, portable 4x8; picked at run time (__builtin_cpu_supports,
// or DD2_GEMM_ISA=avx512|avx2|scalar to force one for tests) since the build has no -march flags.
#include "dd2/cpu/gemm-builtin.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DD2_GEMM_X86 1
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

#include "common/threadpool.h"

namespace dd2 {
namespace {

// C[0..MR)[0..NR) (row stride ldc) = alpha * sum_k ap[k*MR + i] * bp[k*NR + j] + beta * C; beta == 0
// never reads C. ap/bp are 64-byte aligned packed panels.
// alpha and beta come through memory: passed in registers, GCC kept them live across the k loop and
// spilled an accumulator operand to the stack (checked in the generated assembly).
struct Epilogue {
    float alpha, beta;
};
using KernelFn = void (*)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, const Epilogue* ep);

struct Isa {
    const char* name;
    int mr, nr;
    int64_t kc;   // K block: the A micro-panel (MR x kc) stays in L1
    KernelFn kern;
};

constexpr int kMaxTile = 12 * 32;

// ---------------------------------------------------------------- micro-kernels
#ifdef DD2_GEMM_X86
__attribute__((target("avx512f"))) void kernel_avx512_12x32(int64_t kc, const float* __restrict ap,
                                                             const float* __restrict bp, float* c, int64_t ldc,
                                                             const Epilogue* ep) {
    constexpr int MR = 12;
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * 32), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512 av = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
        ap += MR;
        bp += 32;
    }
    const float alpha = ep->alpha, beta = ep->beta;
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            float* ci = c + i * ldc;
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i][0], _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
            _mm512_storeu_ps(ci + 16,
                             _mm512_fmadd_ps(va, acc[i][1], _mm512_mul_ps(vb, _mm512_loadu_ps(ci + 16))));
        }
    }
}

__attribute__((target("avx2,fma"))) void kernel_avx2_6x16(int64_t kc, const float* __restrict ap,
                                                          const float* __restrict bp, float* c, int64_t ldc,
                                                          const Epilogue* ep) {
    constexpr int MR = 6;
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
    }
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            const __m256 av = _mm256_broadcast_ss(ap + i);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        ap += MR;
        bp += 16;
    }
    const float alpha = ep->alpha, beta = ep->beta;
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            float* ci = c + i * ldc;
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc[i][1], _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
        }
    }
}

#endif  // DD2_GEMM_X86

// Portable: plain loops the compiler vectorises with the baseline ISA (SSE2 on x86-64).
void kernel_scalar_4x8(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c,
                       int64_t ldc, const Epilogue* ep) {
    constexpr int MR = 4, NR = 8;
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += ap[i] * bp[j];
        ap += MR;
        bp += NR;
    }
    const float alpha = ep->alpha, beta = ep->beta;
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j)
            c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

const Isa kScalar{"scalar", 4, 8, 256, kernel_scalar_4x8};
#ifdef DD2_GEMM_X86
const Isa kAvx512{"avx512f", 12, 32, 384, kernel_avx512_12x32};
const Isa kAvx2{"avx2+fma", 6, 16, 256, kernel_avx2_6x16};
#endif

const Isa& isa() {
    static const Isa* picked = [] {
#ifndef DD2_GEMM_X86
        return &kScalar;
#else
        __builtin_cpu_init();
        const bool has512 = __builtin_cpu_supports("avx512f");
        const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        const char* env = std::getenv("DD2_GEMM_ISA");
        const std::string want = env ? env : "";
        if (want == "scalar") return &kScalar;
        if (want == "avx2" && has2) return &kAvx2;
        if (want == "avx512" && has512) return &kAvx512;
        return has512 ? &kAvx512 : has2 ? &kAvx2 : &kScalar;
#endif
    }();
    return *picked;
}

// N block: the packed B block (kc x nc) should stay in L2 while the MR-row micro-panels of A sweep it.
// L2_FRACTION of the per-core L2 (sysconf; 1 MiB if unknown), at least 4 panels, at most 4096 columns.
constexpr double L2_FRACTION = 0.75;
int64_t nc_max(const Isa& s) {
    static const long l2 = [] {
#ifdef _SC_LEVEL2_CACHE_SIZE
        const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
        if (v > 0) return v;
#endif
        return 1L << 20;
    }();
    const int64_t nc = (int64_t)(L2_FRACTION * (double)l2 / (double)(s.kc * sizeof(float)));
    return std::max<int64_t>(4 * s.nr, std::min<int64_t>(4096, nc / s.nr * s.nr));
}

// ---------------------------------------------------------------- packing
// Pack op(B)[k0 .. k0+kc) x [n0 .. n0+nc) into ceil(nc/NR) panels of kc x NR (row k contiguous),
// zero-padding the last panel. op(B)(k, n) = tb ? b[n*ldb + k] : b[k*ldb + n].
void pack_b(float* __restrict dst, const float* b, int64_t ldb, bool tb, int64_t k0, int64_t kc, int64_t n0,
            int64_t nc, int NR) {
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
        const int nr = (int)std::min<int64_t>(NR, nc - j0);
        float* p = dst + j0 * kc;   // panel (j0 / NR) starts at (j0 / NR) * kc * NR
        if (!tb) {
            const float* src = b + k0 * ldb + n0 + j0;
            for (int64_t k = 0; k < kc; ++k, src += ldb, p += NR) {
                std::memcpy(p, src, sizeof(float) * nr);
                for (int j = nr; j < NR; ++j) p[j] = 0.0f;
            }
        } else {
            for (int j = 0; j < nr; ++j) {
                const float* src = b + (n0 + j0 + j) * ldb + k0;
                for (int64_t k = 0; k < kc; ++k) p[k * NR + j] = src[k];
            }
            for (int j = nr; j < NR; ++j)
                for (int64_t k = 0; k < kc; ++k) p[k * NR + j] = 0.0f;
        }
    }
}

// Pack op(A)[m0 .. m0+mr) x [k0 .. k0+kc) into one kc x MR micro-panel (column of MR values per k),
// zero rows past mr. op(A)(m, k) = ta ? a[k*lda + m] : a[m*lda + k].
void pack_a(float* __restrict dst, const float* a, int64_t lda, bool ta, int64_t m0, int mr, int64_t k0,
            int64_t kc, int MR) {
    if (ta) {
        const float* src = a + k0 * lda + m0;
        for (int64_t k = 0; k < kc; ++k, src += lda, dst += MR) {
            std::memcpy(dst, src, sizeof(float) * mr);
            for (int i = mr; i < MR; ++i) dst[i] = 0.0f;
        }
    } else {
        for (int i = 0; i < mr; ++i) {
            const float* src = a + (m0 + i) * lda + k0;
            for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
        }
        for (int i = mr; i < MR; ++i)
            for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = 0.0f;
    }
}

// Per-thread packing buffers, 64-byte aligned, grown on demand and kept for later calls.
struct PackBuffer {
    float* p = nullptr;
    size_t cap = 0;
    ~PackBuffer() { std::free(p); }
    float* get(size_t floats) {
        if (floats > cap) {
            std::free(p);
            p = nullptr;
            cap = 0;
            const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
            p = static_cast<float*>(std::aligned_alloc(64, bytes));
            if (!p) throw std::bad_alloc();
            cap = floats;
        }
        return p;
    }
};
thread_local PackBuffer t_pack_a, t_pack_b;

// Splits n into ceil(n / max) near-equal blocks, each a multiple of `unit` except possibly the last.
int64_t balanced_block(int64_t n, int64_t max, int64_t unit) {
    const int64_t nb = (n + max - 1) / max;
    const int64_t b = (n + nb - 1) / nb;
    return std::min(max, (b + unit - 1) / unit * unit);
}

// One tile of C (M x N) with its slices of A and B, on the calling thread.
void gemm_tile(const Isa& s, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool ta, const float* b,
               int64_t ldb, bool tb, float* c, int64_t ldc, float alpha, float beta) {
    const int MR = s.mr, NR = s.nr;
    const int64_t kc_blk = balanced_block(K, s.kc, 8);
    const int64_t nc_blk = balanced_block(N, nc_max(s), NR);
    float* bp = t_pack_b.get((size_t)kc_blk * (size_t)((nc_blk + NR - 1) / NR * NR));
    float* ap = t_pack_a.get((size_t)kc_blk * MR);
    alignas(64) float tmp[kMaxTile];
    for (int64_t jc = 0; jc < N; jc += nc_blk) {
        const int64_t nc = std::min(nc_blk, N - jc);
        for (int64_t pc = 0; pc < K; pc += kc_blk) {
            const int64_t kc = std::min(kc_blk, K - pc);
            const float bet = pc == 0 ? beta : 1.0f;
            const Epilogue full{alpha, bet}, edge{alpha, 0.0f};
            pack_b(bp, b, ldb, tb, pc, kc, jc, nc, NR);
            for (int64_t ir = 0; ir < M; ir += MR) {
                const int mr = (int)std::min<int64_t>(MR, M - ir);
                pack_a(ap, a, lda, ta, ir, mr, pc, kc, MR);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int nr = (int)std::min<int64_t>(NR, nc - jr);
                    float* cij = c + ir * ldc + jc + jr;
                    const float* bpanel = bp + jr * kc;
                    if (mr == MR && nr == NR) {
                        s.kern(kc, ap, bpanel, cij, ldc, &full);
                        continue;
                    }
                    s.kern(kc, ap, bpanel, tmp, NR, &edge);
                    for (int i = 0; i < mr; ++i) {
                        float* ci = cij + i * ldc;
                        const float* ti = tmp + i * NR;
                        if (bet == 0.0f) for (int j = 0; j < nr; ++j) ci[j] = ti[j];
                        else for (int j = 0; j < nr; ++j) ci[j] = ti[j] + bet * ci[j];
                    }
                }
            }
        }
    }
}

// C = beta * C (K == 0 or alpha == 0); beta == 0 writes zeros without reading C.
void scale_c(float* c, int64_t count, float beta) {
    if (beta == 1.0f) return;
    if (beta == 0.0f) std::memset(c, 0, sizeof(float) * count);
    else for (int64_t i = 0; i < count; ++i) c[i] *= beta;
}

}  // namespace

void gemm_builtin_f32(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                      float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(c, M * N, beta);
        return;
    }
    const Isa& s = isa();
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    // Tile C into gm x gn jobs for the pool. Each job packs its own panels (A is re-packed gn times,
    // B gm times), so use as few jobs as keep every thread busy: the split with the smallest largest
    // tile; ties go to more cuts along M (B packing is a row copy, A packing a transpose for NN).
    // Small products run on the calling thread.
    const int64_t mt = (M + s.mr - 1) / s.mr, nt = (N + s.nr - 1) / s.nr;
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    const int64_t want = flops < kGemmBuiltinSerialFlops ? 1 : std::min<int64_t>(num_threads(), mt * nt);
    int64_t gm = 1, gn = 1, best = INT64_MAX;
    for (int64_t g = 1; g <= want; ++g) {
        if (want % g || g > mt || want / g > nt) continue;
        const int64_t area = (mt + g - 1) / g * ((nt + want / g - 1) / (want / g));
        if (area <= best) best = area, gm = g, gn = want / g;
    }
    const int64_t bm = (mt + gm - 1) / gm * s.mr, bn = (nt + gn - 1) / gn * s.nr;
    parallel_for(gm * gn, 1, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
            const int64_t m0 = (j / gn) * bm, n0 = (j % gn) * bn;
            if (m0 >= M || n0 >= N) continue;
            const int64_t m = std::min(bm, M - m0), n = std::min(bn, N - n0);
            gemm_tile(s, m, n, K, ta ? a + m0 : a + m0 * lda, lda, ta, tb ? b + n0 * ldb : b + n0, ldb, tb,
                      c + m0 * N + n0, N, alpha, beta);
        }
    });
}

const char* gemm_builtin_isa() { return isa().name; }

}  // namespace dd2
