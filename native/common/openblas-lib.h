// The OpenBLAS shared library, found once with dlopen (DD2_OPENBLAS_LIB, then libopenblas.so.0, then
// libopenblas.so) unless DD2_NO_BLAS is set. Shared by the float32 GEMM dispatch (cpu/gemm.cpp) and the
// float64 LAPACK path of the eigensolver (cpu/linalg.cpp); each resolves the symbols it needs.
#pragma once
#include <string>

namespace dd2 {

struct OpenBlasLib {
    void* handle = nullptr;      // nullptr when not loaded
    std::string name;            // the name that loaded
    std::string why;             // why it did not load (dlerror messages, or DD2_NO_BLAS)
};

// Thread-safe; the search runs on the first call only.
const OpenBlasLib& openblas_lib();

}  // namespace dd2
