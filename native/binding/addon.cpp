// Module initialisation: builds the exports from the registry, wrapping each function so that a
// dd2::Error becomes a JavaScript Error (RangeError for dd2::RangeError) with the native message.
#include <napi.h>

#include <cstring>

#include "binding/registry.h"
#include "common/check.h"

namespace dd2 {
namespace {

Napi::Value trampoline(const Napi::CallbackInfo& info) {
    const ExportEntry* e = static_cast<const ExportEntry*>(info.Data());
    try {
        return e->fn(info);
    } catch (const Napi::Error&) {
        throw;
    } catch (const RangeError& err) {
        throw Napi::RangeError::New(info.Env(), err.what());
    } catch (const std::exception& err) {
        throw Napi::Error::New(info.Env(), err.what());
    }
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
    for (const ExportEntry& e : export_registry()) {
        exports.Set(e.name, Napi::Function::New(env, trampoline, e.name, const_cast<ExportEntry*>(&e)));
    }
    return exports;
}

}  // namespace
}  // namespace dd2

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return dd2::init(env, exports); }

NODE_API_MODULE(dd2_addon, InitAddon)
