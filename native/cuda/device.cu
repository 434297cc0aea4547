// Device discovery and raw memory for the CUDA backend (one device, the default stream).
// The caching allocator and the kernels arrive with the CUDA backend issue.
#include <cuda_runtime.h>

#include "common/check.h"
#include "cuda/cuda-api.h"

namespace dd2 {
namespace cuda {

static void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(cat("dd2: CUDA error in ", what, ": ", cudaGetErrorString(e)));
    }
}

Info info() {
    Info r;
    cudaRuntimeGetVersion(&r.runtime_version);
    cudaDriverGetVersion(&r.driver_version);
    cudaError_t e = cudaGetDeviceCount(&r.device_count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        r.device_count = 0;
        r.error = cat((int)e, " ", cudaGetErrorString(e));
        return r;
    }
    if (r.device_count == 0) {
        r.error = "no CUDA device";
        return r;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
        r.name = p.name;
        r.cc_major = p.major;
        r.cc_minor = p.minor;
        r.total_mem = p.totalGlobalMem;
    }
    return r;
}

bool available() {
    static int cached = -1;
    if (cached < 0) {
        int n = 0;
        cached = (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) ? 1 : 0;
        (void)cudaGetLastError();
    }
    return cached == 1;
}

void memcpy_h2d(void* d, const void* s, size_t n) { check(cudaMemcpy(d, s, n, cudaMemcpyHostToDevice), "copy host->device"); }
void memcpy_d2h(void* d, const void* s, size_t n) { check(cudaMemcpy(d, s, n, cudaMemcpyDeviceToHost), "copy device->host"); }
void memcpy_d2d(void* d, const void* s, size_t n) { check(cudaMemcpy(d, s, n, cudaMemcpyDeviceToDevice), "copy device->device"); }
void memset_zero(void* d, size_t n) { check(cudaMemset(d, 0, n), "cudaMemset"); }
void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

}  // namespace cuda
}  // namespace dd2
