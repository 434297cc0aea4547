// Bindings for the float64 host linear algebra (native/cpu/linalg.cpp). Arguments are JS Float64Arrays
// (any byteOffset), not tensor storages; sizes are checked against their lengths. Argument order as in
// lib/tensor/native.ts.
#include <string>

#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/linalg.h"

using namespace dd2;

namespace {

int64_t int_arg(const Napi::CallbackInfo& info, size_t k, const char* op, const char* what) {
    DD2_CHECK_RANGE(k < info.Length() && info[k].IsNumber(), op, ": argument ", k, " (", what, ") must be a number");
    double v = info[k].As<Napi::Number>().DoubleValue();
    DD2_CHECK_RANGE(v >= 0 && v == (double)(int64_t)v, op, ": ", what, " must be a non-negative integer, got ", v);
    return (int64_t)v;
}

// Argument k as a Float64Array holding at least `need` elements.
double* f64_arg(const Napi::CallbackInfo& info, size_t k, int64_t need, const char* op, const char* what) {
    DD2_CHECK_RANGE(k < info.Length() && info[k].IsTypedArray() &&
                        info[k].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array,
                    op, ": ", what, " (argument ", k, ") must be a Float64Array");
    Napi::Float64Array arr = info[k].As<Napi::Float64Array>();
    DD2_CHECK_RANGE((int64_t)arr.ElementLength() >= need, op, ": ", what, " has ", arr.ElementLength(),
                    " elements, needs ", need);
    return arr.Data();
}

bool bool_arg(const Napi::CallbackInfo& info, size_t k) {
    return k < info.Length() && (info[k].IsBoolean() ? info[k].As<Napi::Boolean>().Value()
                                                     : info[k].IsNumber() && info[k].As<Napi::Number>().DoubleValue() != 0);
}

}  // namespace

// sym_eig_f64(n, a: Float64Array (n*n, overwritten), w: Float64Array (n), vectors: boolean)
DD2_EXPORT(sym_eig_f64) {
    const char* op = "sym_eig_f64";
    int64_t n = int_arg(info, 0, op, "n");
    DD2_CHECK_RANGE(n <= 1 << 20, op, ": n = ", n, " is too large");
    double* a = f64_arg(info, 1, n * n, op, "a");
    double* w = f64_arg(info, 2, n, op, "w");
    sym_eig_f64_cpu(n, a, w, bool_arg(info, 3));
    return info.Env().Undefined();
}

// gemm_f64(c, a, b, M, N, K, transA, transB, alpha, beta): row-major, see dd2/cpu/linalg.h
DD2_EXPORT(gemm_f64) {
    const char* op = "gemm_f64";
    int64_t M = int_arg(info, 3, op, "M"), N = int_arg(info, 4, op, "N"), K = int_arg(info, 5, op, "K");
    DD2_CHECK_RANGE(info.Length() >= 10 && info[8].IsNumber() && info[9].IsNumber(), op,
                    ": alpha and beta (arguments 8, 9) must be numbers");
    double* c = f64_arg(info, 0, M * N, op, "c");
    const double* a = f64_arg(info, 1, M * K, op, "a");
    const double* b = f64_arg(info, 2, K * N, op, "b");
    DD2_CHECK_RANGE(c + M * N <= a || a + M * K <= c, op, ": c overlaps a");
    DD2_CHECK_RANGE(c + M * N <= b || b + K * N <= c, op, ": c overlaps b");
    gemm_f64_cpu(c, a, b, M, N, K, bool_arg(info, 6), bool_arg(info, 7), info[8].As<Napi::Number>().DoubleValue(),
                 info[9].As<Napi::Number>().DoubleValue());
    return info.Env().Undefined();
}

// linalg_set_backend('auto' | 'builtin' | 'lapack')
DD2_EXPORT(linalg_set_backend) {
    std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (name == "auto") linalg_set_backend(LinalgBackend::Auto);
    else if (name == "builtin") linalg_set_backend(LinalgBackend::Builtin);
    else if (name == "lapack") linalg_set_backend(LinalgBackend::Lapack);
    else throw RangeError("dd2: linalg_set_backend: expected 'auto', 'builtin' or 'lapack', got '" + name + "'");
    return info.Env().Undefined();
}

// linalg_backend() -> 'lapack' | 'builtin'
DD2_EXPORT(linalg_backend) {
    return Napi::String::New(info.Env(), linalg_get_backend() == LinalgBackend::Lapack ? "lapack" : "builtin");
}

// linalg_backend_description() -> e.g. "lapack (libopenblas.so.0: dsyevd_, cblas_dgemm)"
DD2_EXPORT(linalg_backend_description) { return Napi::String::New(info.Env(), linalg_backend_description()); }
