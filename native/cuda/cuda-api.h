// Plain C++ interface to the CUDA side of the addon (no CUDA headers, so g++ compiles the callers).
// Only present when the addon is built with DD2_WITH_CUDA. Every function throws dd2::Error with the
// CUDA error string and the operation's name on failure.
#pragma once
#include <cstddef>
#include <string>

namespace dd2 {
namespace cuda {

struct Info {
    int device_count = 0;
    std::string error;      // empty when device_count > 0; otherwise why there is no device
    int runtime_version = 0;
    int driver_version = 0;
    std::string name;       // device 0's name
    int cc_major = 0, cc_minor = 0;
    size_t total_mem = 0;
};

Info info();                          // never throws
bool available();                     // at least one device usable
// Caching allocator (cuda/allocator.cu): blocks are rounded to size classes and returned to a cache
// on free; a failed cudaMalloc releases the cache and retries once, then throws an out-of-memory
// error reporting the request, live and cached bytes.
void* malloc_bytes(size_t bytes);
void free_bytes(void* p, size_t bytes);
size_t cached_bytes();
void empty_cache();
void memcpy_h2d(void* dst, const void* src, size_t bytes);
void memcpy_d2h(void* dst, const void* src, size_t bytes);
void memcpy_d2d(void* dst, const void* src, size_t bytes);
void memset_zero(void* dst, size_t bytes);
void synchronize();

}  // namespace cuda
}  // namespace dd2
