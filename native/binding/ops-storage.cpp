// Storage exports: allocate, free, host<->native copies, device-to-device copies, memory counters.
#include <cstring>

#include "binding/registry.h"
#include "common/check.h"
#ifdef DD2_WITH_CUDA
#include "cuda/cuda-api.h"
#endif

using namespace dd2;

static Device parse_device(const Napi::Value& v) {
    DD2_CHECK_RANGE(v.IsNumber(), "device must be 0 (cpu) or 1 (cuda)");
    int d = v.As<Napi::Number>().Int32Value();
    DD2_CHECK_RANGE(d == 0 || d == 1, "device must be 0 (cpu) or 1 (cuda), got ", d);
    return (Device)d;
}

static Napi::TypedArray typed(const Napi::CallbackInfo& info, size_t k, const char* op) {
    DD2_CHECK_RANGE(k < info.Length() && info[k].IsTypedArray(), op, ": argument ", k, " must be a typed array");
    return info[k].As<Napi::TypedArray>();
}

static void copy_bytes(Storage& dst, size_t doff, const Storage& src, size_t soff, size_t n) {
    if (n == 0) return;
    char* d = static_cast<char*>(dst.ptr) + doff;
    const char* s = static_cast<const char*>(src.ptr) + soff;
    if (dst.dev == Device::CPU && src.dev == Device::CPU) {
        std::memmove(d, s, n);
        return;
    }
#ifdef DD2_WITH_CUDA
    if (dst.dev == Device::CUDA && src.dev == Device::CUDA) cuda::memcpy_d2d(d, s, n);
    else if (dst.dev == Device::CUDA) cuda::memcpy_h2d(d, s, n);
    else cuda::memcpy_d2h(d, s, n);
#else
    throw Error("dd2: no CUDA support in this build");
#endif
}

// storage_alloc(device, bytes, zero) -> id
DD2_EXPORT(storage_alloc) {
    Device dev = parse_device(info[0]);
    Args a(info, "storage_alloc");
    int64_t bytes = a.i64(1);
    DD2_CHECK_RANGE(bytes >= 0, "storage_alloc: negative size ", bytes);
    bool zero = info.Length() > 2 && info[2].ToBoolean().Value();
    return Napi::Number::New(info.Env(), storage_alloc(dev, (size_t)bytes, zero));
}

// storage_free(id)
DD2_EXPORT(storage_free) {
    Args a(info, "storage_free");
    storage_free((uint32_t)a.i64(0));
    return info.Env().Undefined();
}

// storage_write(id, byteOffset, typedArray): copy a host array into the storage
DD2_EXPORT(storage_write) {
    Args a(info, "storage_write");
    Storage& s = a.storage(0);
    int64_t off = a.i64(1);
    Napi::TypedArray t = typed(info, 2, "storage_write");
    size_t n = t.ByteLength();
    DD2_CHECK_RANGE(off >= 0 && (size_t)off + n <= s.bytes, "storage_write: ", n, " bytes at offset ", off,
                    " overflow a storage of ", s.bytes, " bytes");
    Storage host;
    host.ptr = static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    copy_bytes(s, (size_t)off, host, 0, n);
    return info.Env().Undefined();
}

// storage_read(id, byteOffset, typedArray): fill a host array from the storage
DD2_EXPORT(storage_read) {
    Args a(info, "storage_read");
    Storage& s = a.storage(0);
    int64_t off = a.i64(1);
    Napi::TypedArray t = typed(info, 2, "storage_read");
    size_t n = t.ByteLength();
    DD2_CHECK_RANGE(off >= 0 && (size_t)off + n <= s.bytes, "storage_read: ", n, " bytes at offset ", off,
                    " overflow a storage of ", s.bytes, " bytes");
    Storage host;
    host.ptr = static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    copy_bytes(host, 0, s, (size_t)off, n);
    return info.Env().Undefined();
}

// storage_copy(dst, dstByteOffset, src, srcByteOffset, bytes): any device to any device
DD2_EXPORT(storage_copy) {
    Args a(info, "storage_copy");
    int64_t did = a.i64(0), doff = a.i64(1), sid = a.i64(2), soff = a.i64(3), n = a.i64(4);
    Storage& d = storage_get((uint32_t)did);
    Storage& s = storage_get((uint32_t)sid);
    DD2_CHECK_RANGE(doff >= 0 && soff >= 0 && n >= 0 && (size_t)(doff + n) <= d.bytes &&
                        (size_t)(soff + n) <= s.bytes,
                    "storage_copy: range out of bounds");
    copy_bytes(d, (size_t)doff, s, (size_t)soff, (size_t)n);
    return info.Env().Undefined();
}

// memory_stats() -> { cpu: {live, bytes, peak, allocs}, cuda: {...} }
DD2_EXPORT(memory_stats) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    const char* names[2] = {"cpu", "cuda"};
    for (int d = 0; d < 2; ++d) {
        DeviceStats st = storage_stats((Device)d);
        Napi::Object o = Napi::Object::New(env);
        o.Set("live", (double)st.live);
        o.Set("bytes", (double)st.bytes);
        o.Set("peak", (double)st.peak);
        o.Set("allocs", (double)st.allocs);
        double cached = 0;
#ifdef DD2_WITH_CUDA
        if (d == 1) cached = (double)cuda::cached_bytes();
#endif
        o.Set("cached", cached);
        out.Set(names[d], o);
    }
    return out;
}

// cuda_empty_cache(): returns cached device blocks to the driver
DD2_EXPORT(cuda_empty_cache) {
#ifdef DD2_WITH_CUDA
    cuda::empty_cache();
#endif
    return info.Env().Undefined();
}
