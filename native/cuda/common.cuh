// Shared helpers for CUDA kernel files: error checks that throw dd2::Error naming the op, launch
// geometry, and the stream every kernel runs on (the legacy default stream: one stream, so freed
// blocks can be reused in stream order and host copies synchronise with kernels).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/check.h"
#include "cuda/cuda-api.h"

namespace dd2 {
namespace cuda {

inline cudaStream_t stream() { return 0; }

inline void check_cuda(cudaError_t e, const char* op) {
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(cat("dd2: CUDA error in ", op, ": ", cudaGetErrorString(e)));
    }
}

// Call after every launch.
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), op); }

// Device scratch from the caching allocator, returned on scope exit (stream order makes reuse by a
// later launch safe). Never zero bytes: a request of 0 takes the smallest block.
class Scratch {
public:
    explicit Scratch(size_t bytes) : bytes_(bytes ? bytes : 8), p_(malloc_bytes(bytes_)) {}
    ~Scratch() { free_bytes(p_, bytes_); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    template <typename T>
    T* as() const { return static_cast<T*>(p_); }

private:
    size_t bytes_;
    void* p_;
};

inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535LL * 8) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return (unsigned)(b > cap ? cap : b);
}

}  // namespace cuda
}  // namespace dd2

// Grid-stride loop over [0, n).
#define DD2_GRID_LOOP(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)
