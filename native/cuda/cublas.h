// cuBLAS resolved at run time with dlopen (libcublas.so.13, then .12, or DD2_CUBLAS_LIB): the build
// needs no cuBLAS headers and the addon loads without the library. Prototypes are declared here by
// hand from the stable C ABI (handles are opaque pointers, enums are ints).
#pragma once
#include <cuda_runtime.h>

#include <string>

namespace dd2 {
namespace cuda {

using cublasHandle = void*;
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
enum { DD2_CUDA_R_32F = 0, DD2_CUDA_R_16BF = 14 };
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum { CUBLAS_GEMM_DEFAULT = -1 };

struct CublasApi {
    int (*Create)(cublasHandle*);
    int (*SetStream)(cublasHandle, cudaStream_t);
    int (*SetMathMode)(cublasHandle, int);
    int (*GetVersion)(cublasHandle, int*);
    int (*SgemmStridedBatched)(cublasHandle, int, int, int, int, int, const float*, const float*, int, long long,
                               const float*, int, long long, const float*, float*, int, long long, int);
    int (*GemmStridedBatchedEx)(cublasHandle, int, int, int, int, int, const void*, const void*, int, int, long long,
                                const void*, int, int, long long, const void*, void*, int, int, long long, int, int,
                                int);
};

// The loaded API and a handle bound to stream(), or nullptr with the reason in *why.
const CublasApi* cublas(cublasHandle* handle, std::string* why);
int cublas_version();   // e.g. 130100, 0 if not loaded

}  // namespace cuda
}  // namespace dd2
