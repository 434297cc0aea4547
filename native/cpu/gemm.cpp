// GEMM dispatch: OpenBLAS's cblas_sgemm resolved with dlopen at first use (libopenblas.so.0, then
// libopenblas.so, or DD2_OPENBLAS_LIB), else the built-in kernel (cpu/gemm-builtin.cpp).
// Batches loop here; OpenBLAS threads inside each call, the built-in kernel uses the thread pool.
#include "dd2/cpu/gemm.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "common/check.h"
#include "common/openblas-lib.h"
#include "common/threadpool.h"
#include "dd2/cpu/gemm-builtin.h"

namespace dd2 {
namespace {

// CBLAS enum values (cblas.h): RowMajor = 101, NoTrans = 111, Trans = 112.
using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                          float*, int);
using set_threads_fn = void (*)(int);
using get_config_fn = char* (*)();

struct OpenBlas {
    sgemm_fn sgemm = nullptr;
    set_threads_fn set_threads = nullptr;
    std::string desc;
    std::string why;
    bool generic = false;   // running its generic SSE3 "Prescott" kernels (CPU not recognised)
};

OpenBlas& openblas() {
    static OpenBlas ob;
    static std::once_flag once;
    std::call_once(once, [] {
        const OpenBlasLib& lib = openblas_lib();
        if (!lib.handle) {
            ob.why = lib.why;
            return;
        }
        void* h = lib.handle;
        const char* used = lib.name.c_str();
        ob.sgemm = reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"));
        ob.set_threads = reinterpret_cast<set_threads_fn>(dlsym(h, "openblas_set_num_threads"));
        auto config = reinterpret_cast<get_config_fn>(dlsym(h, "openblas_get_config"));
        if (!ob.sgemm) {
            ob.why += "cblas_sgemm not found; ";
            return;
        }
        ob.desc = std::string("openblas (") + used + (config ? std::string(", ") + config() : "") + ")";
        ob.generic = ob.desc.find(" Prescott ") != std::string::npos;
        if (ob.set_threads) ob.set_threads(num_threads());
    });
    return ob;
}

GemmBackend g_forced = GemmBackend::Auto;

}  // namespace

bool gemm_openblas_available() { return openblas().sgemm != nullptr; }

void gemm_set_backend(GemmBackend b) {
    DD2_CHECK(b != GemmBackend::OpenBLAS || gemm_openblas_available(),
              "OpenBLAS requested but not loaded: ", openblas().why);
    g_forced = b;
}

GemmBackend gemm_get_backend() {
    if (g_forced != GemmBackend::Auto) return g_forced;
    // An OpenBLAS that did not recognise the CPU runs SSE3 kernels about 4x slower than the built-in
    // AVX2/AVX-512 kernel (BENCHMARKS.md), so Auto prefers the built-in kernel then; forcing
    // 'openblas' (or setting OPENBLAS_CORETYPE before start) still uses the library.
    const bool vector_builtin = std::string(gemm_builtin_isa()) != "scalar";
    if (gemm_openblas_available() && !(openblas().generic && vector_builtin)) return GemmBackend::OpenBLAS;
    return GemmBackend::Builtin;
}

const char* gemm_backend_description() {
    static std::string s;
    if (gemm_get_backend() == GemmBackend::OpenBLAS) s = openblas().desc;
    else s = std::string("builtin (") + gemm_builtin_isa() + ")" +
             (!gemm_openblas_available() ? "; OpenBLAS not loaded: " + openblas().why
              : openblas().generic ? "; OpenBLAS loaded but on its generic Prescott kernels (set OPENBLAS_CORETYPE to use it)"
                                   : "");
    return s.c_str();
}

const char* cpu_features_description() {
    static std::string s;
    if (s.empty()) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) s += "avx512f ";
        if (__builtin_cpu_supports("avx2")) s += "avx2 ";
        if (__builtin_cpu_supports("fma")) s += "fma ";
        if (s.empty()) s = "baseline ";
        s.pop_back();
    }
    return s.c_str();
}

void gemm_set_threads(int n) {
    if (openblas().set_threads) openblas().set_threads(n);
}

void gemm_f32_cpu(float* c, const float* a, const float* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                  bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc, float alpha, float beta) {
    if (M == 0 || N == 0) return;
    const bool use_blas = gemm_get_backend() == GemmBackend::OpenBLAS;
    // The built-in kernel runs products under ~4 MFLOP on one thread; for a batch of those (attention
    // heads, per-image convolutions) spread the batch over the pool instead. Outputs must not overlap.
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    if (!use_blas && batch > 1 && sc >= M * N && flops < kGemmBuiltinSerialFlops) {
        parallel_for(batch, 1, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i)
                gemm_builtin_f32(c + i * sc, a + i * sa, b + i * sb, M, N, K, ta, tb, alpha, beta);
        });
        return;
    }
    for (int64_t i = 0; i < batch; ++i) {
        float* ci = c + i * sc;
        const float* ai = a + i * sa;
        const float* bi = b + i * sb;
        if (use_blas && K > 0) {
            openblas().sgemm(101, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, alpha, ai,
                             (int)(ta ? M : K), bi, (int)(tb ? K : N), beta, ci, (int)N);
        } else {
            gemm_builtin_f32(ci, ai, bi, M, N, K, ta, tb, alpha, beta);
        }
    }
}

}  // namespace dd2
