// Bindings for the random kernels (native/cpu/random.cpp, native/cuda/random.cu). Seeds arrive as two
// uint32 words and offsets as doubles (exact up to 2^53); both devices produce the same streams.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/random.h"
#include "dd2/cuda/random.h"

using namespace dd2;

static uint64_t seed_of(Args& a, size_t k) {
    int64_t lo = a.i64(k), hi = a.i64(k + 1);
    DD2_CHECK_RANGE(lo >= 0 && lo <= 0xffffffffLL && hi >= 0 && hi <= 0xffffffffLL, a.op(),
                    ": seed words must be uint32");
    return ((uint64_t)hi << 32) | (uint64_t)lo;
}

static uint64_t offset_of(Args& a, size_t k) {
    int64_t off = a.i64(k);
    DD2_CHECK_RANGE(off >= 0, a.op(), ": negative stream offset");
    return (uint64_t)off;
}

DD2_KERNEL(rng_uniform, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(1);
    a.need(0, n * 4);
    uint64_t seed = seed_of(a, 2), off = offset_of(a, 4);
    DD2_DISPATCH(a, rng_uniform_cpu(a.f32(0), n, seed, off), rng_uniform_cuda(a.f32(0), n, seed, off));
}

DD2_KERNEL(rng_normal, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(1);
    a.need(0, n * 4);
    uint64_t seed = seed_of(a, 2), off = offset_of(a, 4);
    DD2_DISPATCH(a, rng_normal_cpu(a.f32(0), n, seed, off), rng_normal_cuda(a.f32(0), n, seed, off));
}

DD2_KERNEL(rng_categorical, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t rows = a.i64(2), cols = a.i64(3);
    a.need(0, rows * 4);
    a.need(1, rows * cols * 4);
    uint64_t seed = seed_of(a, 4), off = offset_of(a, 6);
    DD2_DISPATCH(a, rng_categorical_cpu(a.i32(0), a.f32(1), rows, cols, seed, off),
                 rng_categorical_cuda(a.i32(0), a.f32(1), rows, cols, seed, off));
}

DD2_KERNEL(rng_dropout_mask, ON_CPU | DD2_CUDA_IF_BUILT) {
    int64_t n = a.i64(1);
    a.need(0, n * 4);
    float p = (float)a.f64(2);
    uint64_t seed = seed_of(a, 3), off = offset_of(a, 5);
    DD2_DISPATCH(a, rng_dropout_mask_cpu(a.f32(0), n, p, seed, off), rng_dropout_mask_cuda(a.f32(0), n, p, seed, off));
}
