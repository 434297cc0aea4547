// GEMM dispatch on the GPU: cuBLAS (row-major product computed as the column-major product of the
// transposes, C^T = op(B)^T op(A)^T) or, without cuBLAS, a shared-memory tiled kernel.
#include <string>

#include "cuda/common.cuh"
#include "cuda/cublas.h"
#include "dd2/cuda/gemm.h"

namespace dd2 {
namespace {

bool g_tf32 = false;
bool g_force_builtin = false;

constexpr int TILE = 32;

// C[b] = alpha op(A[b]) op(B[b]) + beta C[b]; one 32x32 output tile per block, 32x8 threads.
__global__ void gemm_f32_tiled_kernel(float* __restrict__ c, const float* __restrict__ a, const float* __restrict__ b,
                                      int M, int N, int K, bool ta, bool tb, long long sa, long long sb,
                                      long long sc, float alpha, float beta) {
    __shared__ float As[TILE][TILE + 1];
    __shared__ float Bs[TILE][TILE + 1];
    const int bz = blockIdx.z;
    a += bz * sa;
    b += bz * sb;
    c += bz * sc;
    const int row0 = blockIdx.y * TILE, col0 = blockIdx.x * TILE;
    const int tx = threadIdx.x, ty = threadIdx.y;   // 32 x 8
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int k0 = 0; k0 < K; k0 += TILE) {
        for (int r = ty; r < TILE; r += 8) {
            int m = row0 + r, k = k0 + tx;
            As[r][tx] = (m < M && k < K) ? (ta ? a[(long long)k * M + m] : a[(long long)m * K + k]) : 0.f;
            int kk = k0 + r, n = col0 + tx;
            Bs[r][tx] = (kk < K && n < N) ? (tb ? b[(long long)n * K + kk] : b[(long long)kk * N + n]) : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < TILE; ++k) {
            float bv = Bs[k][tx];
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[i] += As[ty + 8 * i][k] * bv;
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) {
        int m = row0 + ty + 8 * i, n = col0 + tx;
        if (m < M && n < N) {
            float* p = c + (long long)m * N + n;
            *p = alpha * acc[i] + (beta == 0.f ? 0.f : beta * *p);
        }
    }
}

}  // namespace

void gemm_cuda_set_tf32(bool on) { g_tf32 = on; }
bool gemm_cuda_tf32() { return g_tf32; }
void gemm_cuda_force_builtin(bool on) { g_force_builtin = on; }

const char* gemm_cuda_description() {
    static std::string s;
    cuda::cublasHandle h;
    std::string why;
    if (!g_force_builtin && cuda::cublas(&h, &why))
        s = cat("cublas ", cuda::cublas_version(), g_tf32 ? " (tf32 on)" : " (tf32 off)");
    else
        s = g_force_builtin ? "builtin (forced)" : "builtin (cuBLAS not loaded: " + why + ")";
    return s.c_str();
}

void gemm_f32_cuda(float* c, const float* a, const float* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                   bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc, float alpha, float beta) {
    if (M == 0 || N == 0 || batch == 0) return;
    cuda::cublasHandle h = nullptr;
    const cuda::CublasApi* api = g_force_builtin ? nullptr : cuda::cublas(&h, nullptr);
    if (api && K > 0) {
        api->SetMathMode(h, g_tf32 ? cuda::CUBLAS_TF32_TENSOR_OP_MATH : cuda::CUBLAS_DEFAULT_MATH);
        int st = api->SgemmStridedBatched(h, tb ? cuda::CUBLAS_OP_T : cuda::CUBLAS_OP_N,
                                          ta ? cuda::CUBLAS_OP_T : cuda::CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha,
                                          b, (int)(tb ? K : N), sb, a, (int)(ta ? M : K), sa, &beta, c, (int)N, sc,
                                          (int)batch);
        DD2_CHECK(st == 0, "gemm (cublasSgemmStridedBatched) failed with status ", st);
        return;
    }
    dim3 grid((unsigned)((N + TILE - 1) / TILE), (unsigned)((M + TILE - 1) / TILE), (unsigned)batch);
    gemm_f32_tiled_kernel<<<grid, dim3(32, 8), 0, cuda::stream()>>>(c, a, b, (int)M, (int)N, (int)K, ta, tb, sa, sb,
                                                                   sc, alpha, beta);
    cuda::check_launch("gemm (builtin kernel)");
}

void gemm_bf16_cuda(void* c, const uint16_t* a, const uint16_t* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                    bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc, float alpha, float beta, bool out_bf16) {
    if (M == 0 || N == 0 || batch == 0) return;
    cuda::cublasHandle h = nullptr;
    std::string why;
    const cuda::CublasApi* api = cuda::cublas(&h, &why);
    DD2_CHECK(api, "gemm_bf16 needs cuBLAS, which did not load: ", why);
    api->SetMathMode(h, cuda::CUBLAS_DEFAULT_MATH);
    int st = api->GemmStridedBatchedEx(h, tb ? cuda::CUBLAS_OP_T : cuda::CUBLAS_OP_N,
                                       ta ? cuda::CUBLAS_OP_T : cuda::CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, b,
                                       cuda::DD2_CUDA_R_16BF, (int)(tb ? K : N), sb, a, cuda::DD2_CUDA_R_16BF,
                                       (int)(ta ? M : K), sa, &beta, c, out_bf16 ? cuda::DD2_CUDA_R_16BF : cuda::DD2_CUDA_R_32F, (int)N, sc, (int)batch,
                                       cuda::CUBLAS_COMPUTE_32F, cuda::CUBLAS_GEMM_DEFAULT);
    DD2_CHECK(st == 0, "gemm_bf16 (cublasGemmStridedBatchedEx) failed with status ", st);
}

}  // namespace dd2
