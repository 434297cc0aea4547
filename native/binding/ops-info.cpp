// Build facts, the capability table and thread control.
#include <cstring>

#include "binding/registry.h"
#include "common/check.h"
#include "common/threadpool.h"
#include "dd2/cpu/gemm.h"
#ifdef DD2_WITH_CUDA
#include "cuda/cuda-api.h"
#endif

using namespace dd2;

// build_info() -> { cuda: {compiled, archs, compiler, devices, error, name, ...}, blas, compiler, threads }
DD2_EXPORT(build_info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    Napi::Object cu = Napi::Object::New(env);
#ifdef DD2_WITH_CUDA
    cuda::Info ci = cuda::info();
    cu.Set("compiled", true);
    cu.Set("archs", DD2_CUDA_ARCHS);
    cu.Set("compiler", "nvcc " DD2_CUDA_COMPILER_VERSION);
    cu.Set("devices", ci.device_count);
    cu.Set("error", ci.error);
    cu.Set("runtimeVersion", ci.runtime_version);
    cu.Set("driverVersion", ci.driver_version);
    cu.Set("name", ci.name);
    cu.Set("computeCapability", std::to_string(ci.cc_major) + "." + std::to_string(ci.cc_minor));
    cu.Set("totalMemory", (double)ci.total_mem);
#else
    cu.Set("compiled", false);
    cu.Set("devices", 0);
    cu.Set("error", "addon built without CUDA (nvcc was not found by CMake, DD2_CUDA=OFF, or a node-gyp build)");
#endif
    out.Set("cuda", cu);
    out.Set("blas", gemm_backend_description());
    out.Set("cpuFeatures", cpu_features_description());
    out.Set("compiler", DD2_CXX_COMPILER);
    out.Set("threads", num_threads());
    out.Set("napiVersion", NAPI_VERSION);
    return out;
}

// supports(name, device) -> boolean: whether kernel `name` runs on device 0 (cpu) / 1 (cuda)
DD2_EXPORT(supports) {
    std::string name = info[0].As<Napi::String>().Utf8Value();
    int dev = info[1].As<Napi::Number>().Int32Value();
    unsigned mask = dev == 0 ? ON_CPU : ON_CUDA;
    for (const ExportEntry& e : export_registry())
        if (name == e.name) return Napi::Boolean::New(info.Env(), (e.devices & mask) != 0);
    return Napi::Boolean::New(info.Env(), false);
}

// kernel_names() -> string[]: every registered kernel (for the capability table and tests)
DD2_EXPORT(kernel_names) {
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env);
    uint32_t i = 0;
    for (const ExportEntry& e : export_registry())
        if (e.devices) arr.Set(i++, e.name);
    return arr;
}

DD2_EXPORT(num_threads) { return Napi::Number::New(info.Env(), num_threads()); }

DD2_EXPORT(set_num_threads) {
    Args a(info, "set_num_threads");
    int64_t n = a.i64(0);
    DD2_CHECK_RANGE(n >= 1 && n <= 64, "set_num_threads: expected 1..64, got ", n);
    set_num_threads((int)n);
    gemm_set_threads((int)n);
    return info.Env().Undefined();
}

// cuda_synchronize(): waits for the device (no-op without CUDA)
DD2_EXPORT(cuda_synchronize) {
#ifdef DD2_WITH_CUDA
    if (cuda::available()) cuda::synchronize();
#endif
    return info.Env().Undefined();
}
