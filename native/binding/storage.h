// The storage table: native code owns every byte of tensor memory, addressed from JS by integer id.
// Ids of freed storage are recycled, so JS must never use an id after freeing it (lib/tensor/storage.ts
// guarantees this with its own disposed flag).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dd2 {

enum class Device : int { CPU = 0, CUDA = 1 };

struct Storage {
    Device dev = Device::CPU;
    void* ptr = nullptr;
    size_t bytes = 0;
    bool live = false;
};

struct DeviceStats {
    int64_t live = 0;       // storages alive
    int64_t bytes = 0;      // bytes alive
    int64_t peak = 0;       // high-water mark of bytes
    int64_t allocs = 0;     // allocations since start
};

uint32_t storage_alloc(Device dev, size_t bytes, bool zero);
void storage_free(uint32_t id);
Storage& storage_get(uint32_t id);        // throws RangeError for an unknown or freed id
DeviceStats storage_stats(Device dev);

}  // namespace dd2
