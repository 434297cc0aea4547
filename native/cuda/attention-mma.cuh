// Tensor-core building blocks of the bf16 attention kernels (attention-fwd.cu, attention-bwd.cu), sm_80+:
// mma.sync m16n8k16 (bf16 in, float32 accumulate), ldmatrix, cp.async, ex2. Fragment layouts (lane = 4·g
// + t): A 16×16 row-major, a0 = (row g, cols 2t, 2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8,
// 2t+8..); B 16×8 "col", b0 = (k 2t, 2t+1; n g), b1 = (k 2t+8, 2t+9; n g); C 16×8 float, c0,c1 = (row g,
// cols 2t, 2t+1), c2,c3 = (row g+8, same cols). Two adjacent C tiles of a row block, rounded to bf16, are
// exactly the A fragment of the next product (the flash-attention register trick). Tiles live in shared
// memory as 64 rows of D bf16 padded to D+8 (a row stride of 16 mod 128 bytes: ldmatrix reads 8 rows at
// one column without bank conflicts).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/attention-common.cuh"

namespace dd2 {
namespace attn {

constexpr int kB = 64;   // rows per streamed tile (keys, or queries in the dk/dv pass) in the bf16 kernels;
                         // a block owns 16 rows per warp of the other side
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define DD2_ATTN_MMA 1   // tensor-core code is compiled for this target (sm_80+ and the host pass)
#endif

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ float2 unpack_bf16(uint32_t x) {
    return make_float2(__uint_as_float(x << 16), __uint_as_float(x & 0xffff0000u));
}

__device__ __forceinline__ float ex2(float x) {
    float y;
    asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

#ifdef DD2_ATTN_MMA
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// 16 bytes global -> shared; src_bytes = 0 writes zeros (rows past the end).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }
#endif

// Shared-memory tile of R rows × D bf16 with padded rows.
template <int D, int R = kB>
struct TileB {
    static constexpr int kStride = D + 8;                  // elements per row
    static constexpr int kElems = R * kStride;
    static constexpr int kBytes = kElems * 2;
};

#ifdef DD2_ATTN_MMA
// Starts copying rows [r0, r0 + R) of a (rows, D) bf16 matrix into tile dst with the block's kThreads
// threads; rows >= n become zeros.
template <int D, int R, int kThreads>
__device__ __forceinline__ void load_tile_async(uint16_t* dst, const uint16_t* src, int r0, int n) {
    constexpr int kChunks = D / 8;   // 16-byte chunks per row
#pragma unroll
    for (int x = threadIdx.x; x < R * kChunks; x += kThreads) {
        const int r = x / kChunks, c = x - r * kChunks;
        const bool ok = r0 + r < n;
        const uint16_t* g = src + (ok ? (int64_t)(r0 + r) * D + c * 8 : 0);
        cp_async16(smem_addr(dst + r * TileB<D>::kStride + c * 8), g, ok ? 16 : 0);
    }
}

// A fragments of the 16 rows [row0, row0+16) of a tile, columns [16·kc, 16·kc + 16).
template <int D>
__device__ __forceinline__ void load_a(uint32_t* a, const uint16_t* tile, int row0, int kc) {
    const int l = threadIdx.x & 31;
    const int row = row0 + (l & 7) + ((l >> 3) & 1) * 8, col = kc * 16 + (l >> 4) * 8;
    ldsm_x4(a, smem_addr(tile + row * TileB<D>::kStride + col));
}

// B fragments for B[k][n] = tile[n][k] (rows of the tile are n): n in [n0, n0+16), k in [16·kc, +16).
// b[0], b[1] serve the n-tile n0, b[2], b[3] the n-tile n0 + 8.
template <int D>
__device__ __forceinline__ void load_b_rows(uint32_t* b, const uint16_t* tile, int n0, int kc) {
    const int l = threadIdx.x & 31;
    const int row = n0 + (l & 7) + (l >> 4) * 8, col = kc * 16 + ((l >> 3) & 1) * 8;
    ldsm_x4(b, smem_addr(tile + row * TileB<D>::kStride + col));
}

// B fragments for B[k][n] = tile[k][n] (rows of the tile are k): k in [k0, k0+16), n in [n0, n0+16).
// b[0], b[1] serve the n-tile n0, b[2], b[3] the n-tile n0 + 8.
template <int D>
__device__ __forceinline__ void load_b_cols(uint32_t* b, const uint16_t* tile, int k0, int n0) {
    const int l = threadIdx.x & 31;
    const int row = k0 + (l & 7) + ((l >> 3) & 1) * 8, col = n0 + (l >> 4) * 8;
    ldsm_x4_t(b, smem_addr(tile + row * TileB<D>::kStride + col));
}
#endif

// Calls f with D as a compile-time constant for the supported head dims.
template <class F>
void with_head_dim(int64_t D, const char* op, F&& f) {
    switch (D) {
        case 32: f(std::integral_constant<int, 32>()); break;
        case 64: f(std::integral_constant<int, 64>()); break;
        case 96: f(std::integral_constant<int, 96>()); break;
        case 128: f(std::integral_constant<int, 128>()); break;
        default:
            throw RangeError(cat("dd2: ", op, ": bf16 attention on cuda supports head dims 32, 64, 96, 128 (got D=",
                                 D, ")"));
    }
}

// Throws unless the current device can run mma.sync bf16 (compute capability 8.0+).
inline void require_sm80(const char* op) {
    static const int cc = [] {
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                                                                          dev) != cudaSuccess)
            return 0;
        return major;
    }();
    DD2_CHECK(cc >= 8, op, ": bf16 attention needs a GPU of compute capability 8.0 or newer");
}

template <class K>
void allow_smem(K kernel, size_t bytes, const char* op) {
    if (bytes > 48 * 1024)
        cuda::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), op);
}

}  // namespace attn
}  // namespace dd2
