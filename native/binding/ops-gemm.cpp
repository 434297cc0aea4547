// Bindings for GEMM (native/cpu/gemm.cpp).
#include <string>

#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/gemm.h"
#include "dd2/cuda/gemm.h"

using namespace dd2;

// gemm(c, a, b, batch, M, N, K, transA, transB, strideA, strideB, strideC, alpha, beta)
DD2_KERNEL(gemm, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t batch = a.i64(3), M = a.i64(4), N = a.i64(5), K = a.i64(6);
    int64_t sa = a.i64(9), sb = a.i64(10), sc = a.i64(11);
    DD2_CHECK_RANGE(batch >= 0 && M >= 0 && N >= 0 && K >= 0, "gemm: negative size");
    DD2_CHECK_RANGE(sc >= M * N || batch <= 1, "gemm: output batches overlap (strideC ", sc, " < M*N)");
    if (batch == 0) return;
    a.need(0, ((batch - 1) * sc + M * N) * 4);
    a.need(1, ((batch - 1) * sa + M * K) * 4);
    a.need(2, ((batch - 1) * sb + K * N) * 4);
    bool ta = a.flag(7), tb = a.flag(8);
    float alpha = (float)a.f64(12), beta = (float)a.f64(13);
    DD2_DISPATCH(a, gemm_f32_cpu(a.f32(0), a.f32(1), a.f32(2), batch, M, N, K, ta, tb, sa, sb, sc, alpha, beta),
                 gemm_f32_cuda(a.f32(0), a.f32(1), a.f32(2), batch, M, N, K, ta, tb, sa, sb, sc, alpha, beta));
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

// gemm_cuda_options({tf32?: boolean, builtin?: boolean}) -> description of the CUDA GEMM in use
DD2_EXPORT(gemm_cuda_options) {
#ifdef DD2_WITH_CUDA
    if (info.Length() > 0 && info[0].IsObject()) {
        Napi::Object o = info[0].As<Napi::Object>();
        if (o.Has("tf32")) gemm_cuda_set_tf32(o.Get("tf32").ToBoolean().Value());
        if (o.Has("builtin")) gemm_cuda_force_builtin(o.Get("builtin").ToBoolean().Value());
    }
    return Napi::String::New(info.Env(), gemm_cuda_description());
#else
    return Napi::String::New(info.Env(), "not compiled");
#endif
}

#ifdef DD2_WITH_CUDA
// gemm_bf16(c, a, b, batch, M, N, K, transA, transB, strideA, strideB, strideC, alpha, beta, outBf16):
// a and b hold bf16 (2 bytes per element); c float32, or bf16 with outBf16. CUDA only (cuBLAS).
DD2_KERNEL(gemm_bf16, ON_CUDA) {
    int64_t batch = a.i64(3), M = a.i64(4), N = a.i64(5), K = a.i64(6);
    int64_t sa = a.i64(9), sb = a.i64(10), sc = a.i64(11);
    bool out_bf16 = a.flag(14);
    DD2_CHECK_RANGE(batch >= 0 && M >= 0 && N >= 0 && K >= 0, "gemm_bf16: negative size");
    if (batch == 0) return;
    a.need(0, ((batch - 1) * sc + M * N) * (out_bf16 ? 2 : 4));
    a.need(1, ((batch - 1) * sa + M * K) * 2);
    a.need(2, ((batch - 1) * sb + K * N) * 2);
    DD2_CHECK(a.device() == Device::CUDA, "gemm_bf16 is only available on cuda");
    gemm_bf16_cuda(a.storage(0).ptr, static_cast<const uint16_t*>(a.storage(1).ptr),
                   static_cast<const uint16_t*>(a.storage(2).ptr), batch, M, N, K, a.flag(7), a.flag(8), sa, sb, sc,
                   (float)a.f64(12), (float)a.f64(13), out_bf16);
}
#endif
