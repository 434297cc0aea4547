// Export registry: every binding file registers its functions with DD2_EXPORT (plain functions such
// as storage_alloc) or DD2_KERNEL (an op kernel, with the devices it runs on, which feeds the
// capability table `supports(name, device)`). addon.cpp builds the module from the registry, so adding
// a kernel family touches no shared file.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "binding/storage.h"

namespace dd2 {

using ExportFn = Napi::Value (*)(const Napi::CallbackInfo&);

enum DeviceMask : unsigned { ON_CPU = 1u, ON_CUDA = 2u };

struct ExportEntry {
    const char* name;
    ExportFn fn;
    unsigned devices;   // 0 for non-kernel exports
};

std::vector<ExportEntry>& export_registry();

struct Registrar {
    Registrar(const char* name, ExportFn fn, unsigned devices) {
        export_registry().push_back({name, fn, devices});
    }
};

// Argument unpacking for kernels: storage ids, integers, floats, integer arrays. Every storage
// resolved through f32/i32/ptr records its device; device() says which one they share.
class Args {
public:
    Args(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}
    const char* op() const { return op_; }
    size_t size() const { return info_.Length(); }
    bool absent(size_t k) const;                 // argument k is -1, null or undefined (optional tensor)
    int64_t i64(size_t k) const;
    double f64(size_t k) const;
    bool flag(size_t k) const;                   // a boolean (or 0/1)
    std::vector<int64_t> ints(size_t k) const;   // a JS array of integers
    Storage& storage(size_t k);
    float* f32(size_t k) { return static_cast<float*>(storage(k).ptr); }
    int32_t* i32(size_t k) { return static_cast<int32_t*>(storage(k).ptr); }
    float* f32_opt(size_t k) { return absent(k) ? nullptr : f32(k); }
    int32_t* i32_opt(size_t k) { return absent(k) ? nullptr : i32(k); }
    // Checks that `bytes` fit in storage k (kernels are given sizes separately from ids).
    void need(size_t k, size_t bytes);
    Device device() const;                       // the common device of resolved storages
    void require_cpu();                          // throws "<op> is not available on cuda"

private:
    const Napi::CallbackInfo& info_;
    const char* op_;
    bool seen_cpu_ = false, seen_cuda_ = false;
};

}  // namespace dd2

// Kernels with a CUDA implementation register with ON_CPU | DD2_CUDA_IF_BUILT and call
// DD2_DISPATCH(a, cpu_call, cuda_call); without CUDA in the build the cuda_call is not even compiled.
#ifdef DD2_WITH_CUDA
#define DD2_CUDA_IF_BUILT ::dd2::ON_CUDA
#define DD2_DISPATCH(a, cpu_call, cuda_call)                        \
    do {                                                            \
        if ((a).device() == ::dd2::Device::CUDA) { cuda_call; }     \
        else { cpu_call; }                                          \
    } while (0)
#else
#define DD2_CUDA_IF_BUILT 0u
#define DD2_DISPATCH(a, cpu_call, cuda_call) \
    do {                                     \
        (a).require_cpu();                   \
        cpu_call;                            \
    } while (0)
#endif

#define DD2_CONCAT_(a, b) a##b
#define DD2_CONCAT(a, b) DD2_CONCAT_(a, b)

// DD2_EXPORT(name) { ... return value; }   -- info is the CallbackInfo
#define DD2_EXPORT(name)                                                                 \
    static Napi::Value dd2_export_##name(const Napi::CallbackInfo& info);                \
    static ::dd2::Registrar DD2_CONCAT(dd2_reg_, name)(#name, dd2_export_##name, 0u);    \
    static Napi::Value dd2_export_##name(const Napi::CallbackInfo& info)

// DD2_KERNEL(name, devices) { Args a(...) is available as `a`; return nothing }
#define DD2_KERNEL(name, devices)                                                        \
    static void dd2_kernel_body_##name(::dd2::Args& a);                                  \
    static Napi::Value dd2_kernel_##name(const Napi::CallbackInfo& info) {               \
        ::dd2::Args a(info, #name);                                                      \
        dd2_kernel_body_##name(a);                                                       \
        return info.Env().Undefined();                                                   \
    }                                                                                    \
    static ::dd2::Registrar DD2_CONCAT(dd2_reg_, name)(#name, dd2_kernel_##name, devices); \
    static void dd2_kernel_body_##name(::dd2::Args& a)
