// Philox4x32-10 counter-based generator (Salmon et al., SC'11), shared by the CPU and CUDA kernels so
// both produce the same streams. Element g of a stream (key = 64-bit seed) uses counter block g / 4,
// lane g % 4. Uniforms are exact functions of the 32-bit outputs (bit-identical on every device);
// normals are Box-Muller in double, rounded to float.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define DD2_HD __host__ __device__ __forceinline__
#else
#define DD2_HD inline
#endif

namespace dd2 {

struct U32x4 { uint32_t v[4]; };

DD2_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    hi = (uint32_t)(p >> 32);
    lo = (uint32_t)p;
}

DD2_HD U32x4 philox4x32_10(uint64_t block, uint32_t k0, uint32_t k1) {
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = 0, c3 = 0;
    for (int r = 0; r < 10; ++r) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2511F53u, c0, hi0, lo0);
        mulhilo(0xCD9E8D57u, c2, hi1, lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return U32x4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits (every value exactly representable in float32).
DD2_HD float philox_uniform(uint64_t g, uint32_t k0, uint32_t k1) {
    U32x4 r = philox4x32_10(g >> 2, k0, k1);
    return (float)(r.v[g & 3] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace dd2
