// GEMM on the GPU, same row-major contract as dd2/cpu/gemm.h (batch strides in elements, 0 =
// broadcast). cuBLAS when it loads (TF32 tensor cores optional), else a tiled CUDA kernel.
#pragma once
#include <cstdint>

namespace dd2 {

void gemm_f32_cuda(float* c, const float* a, const float* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                   bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha,
                   float beta);
// bf16 inputs (uint16 storage), float32 accumulation, output float32 or (out_bf16) bf16; cuBLAS only.
void gemm_bf16_cuda(void* c, const uint16_t* a, const uint16_t* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                    bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha,
                    float beta, bool out_bf16);
void gemm_cuda_set_tf32(bool on);
bool gemm_cuda_tf32();
// "cublas 13.1 (tf32 on)" / "builtin (cuBLAS not loaded: ...)"
const char* gemm_cuda_description();
void gemm_cuda_force_builtin(bool on);   // for tests and benchmarks

}  // namespace dd2
