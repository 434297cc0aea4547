// The built-in GEMM used when OpenBLAS is absent (or forced): same contract as gemm_f32_cpu in
// gemm.h for one matrix (no batch). Blocked and packed, vectorised with runtime CPU dispatch.
#pragma once
#include <cstdint>

namespace dd2 {

void gemm_builtin_f32(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                      bool trans_b, float alpha, float beta);
const char* gemm_builtin_isa();   // which micro-kernel the dispatch picked, e.g. "avx2+fma"

// Products of fewer flops (2*M*N*K) run on the calling thread; gemm_f32_cpu spreads batches of them.
constexpr double kGemmBuiltinSerialFlops = 4e6;

}  // namespace dd2
