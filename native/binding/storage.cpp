// Storage table implementation: 64-byte aligned host memory, cudaMalloc on the device.
#include "binding/storage.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/check.h"
#ifdef DD2_WITH_CUDA
#include "cuda/cuda-api.h"
#endif

namespace dd2 {
namespace {

std::vector<Storage> g_table(1);          // id 0 is never handed out
std::vector<uint32_t> g_free_ids;
DeviceStats g_stats[2];

}  // namespace

uint32_t storage_alloc(Device dev, size_t bytes, bool zero) {
    Storage s;
    s.dev = dev;
    s.bytes = bytes;
    s.live = true;
    if (dev == Device::CPU) {
        size_t rounded = ((bytes + 63) / 64) * 64;
        s.ptr = std::aligned_alloc(64, rounded ? rounded : 64);
        DD2_CHECK(s.ptr, "out of host memory allocating ", bytes, " bytes");
        if (zero) std::memset(s.ptr, 0, bytes);
    } else {
#ifdef DD2_WITH_CUDA
        s.ptr = cuda::malloc_bytes(bytes);
        if (zero) cuda::memset_zero(s.ptr, bytes);
#else
        throw Error("dd2: this build of the addon has no CUDA support (rebuild with nvcc on PATH)");
#endif
    }
    uint32_t id;
    if (!g_free_ids.empty()) {
        id = g_free_ids.back();
        g_free_ids.pop_back();
        g_table[id] = s;
    } else {
        id = (uint32_t)g_table.size();
        g_table.push_back(s);
    }
    DeviceStats& st = g_stats[(int)dev];
    st.live += 1;
    st.bytes += (int64_t)bytes;
    st.allocs += 1;
    if (st.bytes > st.peak) st.peak = st.bytes;
    return id;
}

Storage& storage_get(uint32_t id) {
    DD2_CHECK_RANGE(id > 0 && id < g_table.size() && g_table[id].live, "storage ", id,
                    " does not exist (freed or never allocated)");
    return g_table[id];
}

void storage_free(uint32_t id) {
    Storage& s = storage_get(id);
    if (s.dev == Device::CPU) {
        std::free(s.ptr);
    } else {
#ifdef DD2_WITH_CUDA
        cuda::free_bytes(s.ptr, s.bytes);
#endif
    }
    DeviceStats& st = g_stats[(int)s.dev];
    st.live -= 1;
    st.bytes -= (int64_t)s.bytes;
    s = Storage();
    g_free_ids.push_back(id);
}

DeviceStats storage_stats(Device dev) { return g_stats[(int)dev]; }

}  // namespace dd2
