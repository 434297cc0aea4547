// Caching device allocator. Requests are rounded up to a size class (512 B multiples below 1 MiB,
// 2 MiB multiples above) and freed blocks wait in a cache keyed by block size. A request takes the
// smallest cached block of at least its class and at most twice it (best fit), so a cache filled
// by varying sizes is reused instead of growing. All work runs on one stream, so a block freed after a launch can be handed to a later launch
// without synchronising (stream order). On cudaMalloc failure the cache is released and the
// allocation retried once before an out-of-memory error.
#include <cuda_runtime.h>

#include <map>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "cuda/cuda-api.h"

namespace dd2 {
namespace cuda {
namespace {

struct Cache {
    std::map<size_t, std::vector<void*>> free_blocks;   // block size -> blocks
    std::unordered_map<void*, size_t> block_size;       // live block -> its size
    size_t cached = 0;                                  // bytes in free_blocks
    size_t live = 0;                                    // bytes handed out (rounded)
};

Cache& cache() {
    static Cache c;
    return c;
}

size_t size_class(size_t bytes) {
    if (bytes == 0) bytes = 1;
    constexpr size_t kSmall = 512, kLarge = 2u << 20;
    return bytes < (1u << 20) ? (bytes + kSmall - 1) / kSmall * kSmall : (bytes + kLarge - 1) / kLarge * kLarge;
}

std::string fmt_bytes(size_t b) {
    return cat((double)b / (1u << 20), " MiB");
}

}  // namespace

void* malloc_bytes(size_t bytes) {
    Cache& c = cache();
    const size_t cls = size_class(bytes);
    for (auto it = c.free_blocks.lower_bound(cls); it != c.free_blocks.end() && it->first <= 2 * cls; ++it) {
        if (it->second.empty()) continue;
        void* p = it->second.back();
        it->second.pop_back();
        c.cached -= it->first;
        c.live += it->first;
        c.block_size[p] = it->first;
        return p;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, cls);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        empty_cache();
        e = cudaMalloc(&p, cls);
    }
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        throw Error(cat("dd2: CUDA out of memory: requested ", fmt_bytes(bytes), "; live ", fmt_bytes(c.live),
                        ", cached ", fmt_bytes(c.cached), " (released), device free ", fmt_bytes(free_b), " of ",
                        fmt_bytes(total_b)));
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(cat("dd2: CUDA error in cudaMalloc: ", cudaGetErrorString(e)));
    }
    c.live += cls;
    c.block_size[p] = cls;
    return p;
}

void free_bytes(void* p, size_t bytes) {
    Cache& c = cache();
    auto it = c.block_size.find(p);
    const size_t size = it != c.block_size.end() ? it->second : size_class(bytes);
    if (it != c.block_size.end()) c.block_size.erase(it);
    c.free_blocks[size].push_back(p);
    c.cached += size;
    c.live -= size;
}

size_t cached_bytes() { return cache().cached; }

void empty_cache() {
    Cache& c = cache();
    cudaDeviceSynchronize();
    for (auto& kv : c.free_blocks)
        for (void* p : kv.second) cudaFree(p);
    c.free_blocks.clear();
    c.cached = 0;
}

}  // namespace cuda
}  // namespace dd2
