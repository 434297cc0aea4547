// Export registry storage and the Args helpers.
#include "binding/registry.h"

#include "common/check.h"

namespace dd2 {

std::vector<ExportEntry>& export_registry() {
    static std::vector<ExportEntry> entries;
    return entries;
}

bool Args::absent(size_t k) const {
    if (k >= info_.Length()) return true;
    const Napi::Value v = info_[k];
    if (v.IsNull() || v.IsUndefined()) return true;
    return v.IsNumber() && v.As<Napi::Number>().DoubleValue() < 0;
}

int64_t Args::i64(size_t k) const {
    DD2_CHECK_RANGE(k < info_.Length() && info_[k].IsNumber(), op_, ": argument ", k, " must be a number");
    double d = info_[k].As<Napi::Number>().DoubleValue();
    DD2_CHECK_RANGE(d == (double)(int64_t)d, op_, ": argument ", k, " must be an integer, got ", d);
    return (int64_t)d;
}

double Args::f64(size_t k) const {
    DD2_CHECK_RANGE(k < info_.Length() && info_[k].IsNumber(), op_, ": argument ", k, " must be a number");
    return info_[k].As<Napi::Number>().DoubleValue();
}

bool Args::flag(size_t k) const {
    DD2_CHECK_RANGE(k < info_.Length() && (info_[k].IsBoolean() || info_[k].IsNumber()), op_, ": argument ", k,
                    " must be a boolean");
    return info_[k].ToBoolean().Value();
}

std::vector<int64_t> Args::ints(size_t k) const {
    DD2_CHECK_RANGE(k < info_.Length() && info_[k].IsArray(), op_, ": argument ", k, " must be an array");
    Napi::Array arr = info_[k].As<Napi::Array>();
    std::vector<int64_t> out(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value v = arr.Get(i);
        DD2_CHECK_RANGE(v.IsNumber(), op_, ": argument ", k, "[", i, "] must be a number");
        out[i] = (int64_t)v.As<Napi::Number>().DoubleValue();
    }
    return out;
}

Storage& Args::storage(size_t k) {
    int64_t id = i64(k);
    DD2_CHECK_RANGE(id > 0 && id <= 0xffffffffLL, op_, ": argument ", k, " is not a storage id (", id, ")");
    Storage& s = storage_get((uint32_t)id);
    (s.dev == Device::CPU ? seen_cpu_ : seen_cuda_) = true;
    DD2_CHECK(!(seen_cpu_ && seen_cuda_), op_, ": tensors on different devices (cpu and cuda)");
    return s;
}

void Args::need(size_t k, size_t bytes) {
    Storage& s = storage(k);
    DD2_CHECK_RANGE(s.bytes >= bytes, op_, ": argument ", k, " holds ", s.bytes, " bytes but ", bytes,
                    " are needed");
}

Device Args::device() const { return seen_cuda_ ? Device::CUDA : Device::CPU; }

void Args::require_cpu() {
    DD2_CHECK(!seen_cuda_, op_, " is not available on cuda in this build");
}

}  // namespace dd2
