// Bindings for GEMM (native/cpu/gemm.cpp).
#include <string>

#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/gemm.h"

using namespace dd2;

// gemm(c, a, b, batch, M, N, K, transA, transB, strideA, strideB, strideC, alpha, beta)
DD2_KERNEL(gemm, ON_CPU) {
    int64_t batch = a.i64(3), M = a.i64(4), N = a.i64(5), K = a.i64(6);
    int64_t sa = a.i64(9), sb = a.i64(10), sc = a.i64(11);
    DD2_CHECK_RANGE(batch >= 0 && M >= 0 && N >= 0 && K >= 0, "gemm: negative size");
    DD2_CHECK_RANGE(sc >= M * N || batch <= 1, "gemm: output batches overlap (strideC ", sc, " < M*N)");
    if (batch == 0) return;
    a.need(0, ((batch - 1) * sc + M * N) * 4);
    a.need(1, ((batch - 1) * sa + M * K) * 4);
    a.need(2, ((batch - 1) * sb + K * N) * 4);
    a.require_cpu();
    bool ta = a.flag(7), tb = a.flag(8);
    gemm_f32_cpu(a.f32(0), a.f32(1), a.f32(2), batch, M, N, K, ta, tb, sa, sb, sc, (float)a.f64(12),
                 (float)a.f64(13));
}

// gemm_set_backend('auto' | 'builtin' | 'openblas')
DD2_EXPORT(gemm_set_backend) {
    std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (name == "auto") gemm_set_backend(GemmBackend::Auto);
    else if (name == "builtin") gemm_set_backend(GemmBackend::Builtin);
    else if (name == "openblas") gemm_set_backend(GemmBackend::OpenBLAS);
    else throw RangeError("dd2: gemm_set_backend: expected 'auto', 'builtin' or 'openblas', got '" + name + "'");
    return info.Env().Undefined();
}

DD2_EXPORT(gemm_get_backend) {
    return Napi::String::New(info.Env(), gemm_get_backend() == GemmBackend::OpenBLAS ? "openblas" : "builtin");
}
