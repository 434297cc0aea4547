// cuBLAS loader: dlopen + dlsym of the handful of entry points dd2 uses.
#include "cuda/cublas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "cuda/common.cuh"

namespace dd2 {
namespace cuda {
namespace {

struct Loaded {
    CublasApi api{};
    cublasHandle handle = nullptr;
    bool ok = false;
    int version = 0;
    std::string why;
};

Loaded& loaded() {
    static Loaded L;
    static std::once_flag once;
    std::call_once(once, [] {
        const char* names[] = {std::getenv("DD2_CUBLAS_LIB"), "libcublas.so.13", "libcublas.so.12", "libcublas.so"};
        void* h = nullptr;
        for (const char* n : names) {
            if (!n || !*n) continue;
            h = dlopen(n, RTLD_NOW | RTLD_LOCAL);
            if (h) break;
            L.why += std::string(dlerror()) + "; ";
        }
        if (!h) return;
        auto sym = [&](const char* name) {
            void* p = dlsym(h, name);
            if (!p) L.why += std::string("missing ") + name + "; ";
            return p;
        };
        L.api.Create = reinterpret_cast<decltype(L.api.Create)>(sym("cublasCreate_v2"));
        L.api.SetStream = reinterpret_cast<decltype(L.api.SetStream)>(sym("cublasSetStream_v2"));
        L.api.SetMathMode = reinterpret_cast<decltype(L.api.SetMathMode)>(sym("cublasSetMathMode"));
        L.api.GetVersion = reinterpret_cast<decltype(L.api.GetVersion)>(sym("cublasGetVersion_v2"));
        L.api.SgemmStridedBatched =
            reinterpret_cast<decltype(L.api.SgemmStridedBatched)>(sym("cublasSgemmStridedBatched"));
        L.api.GemmStridedBatchedEx =
            reinterpret_cast<decltype(L.api.GemmStridedBatchedEx)>(sym("cublasGemmStridedBatchedEx"));
        if (!(L.api.Create && L.api.SetStream && L.api.SetMathMode && L.api.GetVersion && L.api.SgemmStridedBatched &&
              L.api.GemmStridedBatchedEx))
            return;
        int st = L.api.Create(&L.handle);
        if (st != 0) {
            L.why += cat("cublasCreate failed with status ", st, "; ");
            return;
        }
        L.api.SetStream(L.handle, stream());
        L.api.GetVersion(L.handle, &L.version);
        L.ok = true;
    });
    return L;
}

}  // namespace

const CublasApi* cublas(cublasHandle* handle, std::string* why) {
    Loaded& L = loaded();
    if (!L.ok) {
        if (why) *why = L.why;
        return nullptr;
    }
    *handle = L.handle;
    return &L.api;
}

int cublas_version() { return loaded().ok ? loaded().version : 0; }

}  // namespace cuda
}  // namespace dd2
