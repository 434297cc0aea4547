// Bindings for fused attention (native/cpu/attention.cpp, native/cuda/attention*.cu). Each wrapper unpacks
// ids and sizes, checks that every buffer (and the optional int32 level arrays) is large enough, and
// dispatches. The bf16 kernels (uint16 storage, 2 bytes per element; lse float32) exist on cuda only.
#include "binding/registry.h"
#include "common/check.h"
#include "dd2/cpu/attention.h"
#include "dd2/cuda/attention.h"

using namespace dd2;

// Reads BH, Tq, Tk, D, scale, causal, levelQ, levelK starting at argument `at`.
static AttentionShape read_shape(Args& a, size_t at) {
    AttentionShape s;
    s.BH = a.i64(at);
    s.Tq = a.i64(at + 1);
    s.Tk = a.i64(at + 2);
    s.D = a.i64(at + 3);
    DD2_CHECK_RANGE(s.BH >= 0 && s.Tq >= 0 && s.Tk >= 0 && s.D >= 0, a.op(), ": negative size (BH=", s.BH,
                    ", Tq=", s.Tq, ", Tk=", s.Tk, ", D=", s.D, ")");
    s.scale = (float)a.f64(at + 4);
    s.causal = a.flag(at + 5);
    const bool has_q = !a.absent(at + 6), has_k = !a.absent(at + 7);
    DD2_CHECK_RANGE(has_q == has_k, a.op(), ": levelQ and levelK must both be given or both be -1");
    if (has_q) {
        a.need(at + 6, s.Tq * 4);
        a.need(at + 7, s.Tk * 4);
        s.level_q = a.i32(at + 6);
        s.level_k = a.i32(at + 7);
    }
    return s;
}

// attention_forward(o, lse, q, k, v, BH, Tq, Tk, D, scale, causal, levelQ, levelK)
DD2_KERNEL(attention_forward, ON_CPU | DD2_CUDA_IF_BUILT) {
    const AttentionShape s = read_shape(a, 5);
    const int64_t nq = s.BH * s.Tq * s.D * 4, nk = s.BH * s.Tk * s.D * 4;
    a.need(0, nq);
    a.need(1, s.BH * s.Tq * 4);
    a.need(2, nq);
    a.need(3, nk);
    a.need(4, nk);
    DD2_DISPATCH(a, attention_forward_f32_cpu(a.f32(0), a.f32(1), a.f32(2), a.f32(3), a.f32(4), s),
                 attention_forward_f32_cuda(a.f32(0), a.f32(1), a.f32(2), a.f32(3), a.f32(4), s));
}

// attention_backward(dq, dk, dv, dout, q, k, v, o, lse, BH, Tq, Tk, D, scale, causal, levelQ, levelK)
DD2_KERNEL(attention_backward, ON_CPU | DD2_CUDA_IF_BUILT) {
    const AttentionShape s = read_shape(a, 9);
    const int64_t nq = s.BH * s.Tq * s.D * 4, nk = s.BH * s.Tk * s.D * 4;
    for (size_t i : {0, 3, 4, 7}) a.need(i, nq);
    for (size_t i : {1, 2, 5, 6}) a.need(i, nk);
    a.need(8, s.BH * s.Tq * 4);
    DD2_DISPATCH(a,
                 attention_backward_f32_cpu(a.f32(0), a.f32(1), a.f32(2), a.f32(3), a.f32(4), a.f32(5), a.f32(6),
                                            a.f32(7), a.f32(8), s),
                 attention_backward_f32_cuda(a.f32(0), a.f32(1), a.f32(2), a.f32(3), a.f32(4), a.f32(5), a.f32(6),
                                             a.f32(7), a.f32(8), s));
}

#ifdef DD2_WITH_CUDA
static uint16_t* bf16(Args& a, size_t k) { return static_cast<uint16_t*>(a.storage(k).ptr); }
#endif

// Throws unless the resolved storages live on cuda (the bf16 kernels have no cpu version).
static void require_cuda(Args& a) {
#ifdef DD2_WITH_CUDA
    DD2_CHECK(a.device() == Device::CUDA, a.op(), " is only available on cuda");
#else
    DD2_CHECK(false, a.op(), " is only available on cuda (this build has no CUDA)");
#endif
}

// attention_forward_bf16(o, lse, q, k, v, BH, Tq, Tk, D, scale, causal, levelQ, levelK): q/k/v/o bf16
DD2_KERNEL(attention_forward_bf16, DD2_CUDA_IF_BUILT) {
    const AttentionShape s = read_shape(a, 5);
    const int64_t nq = s.BH * s.Tq * s.D * 2, nk = s.BH * s.Tk * s.D * 2;
    a.need(0, nq);
    a.need(1, s.BH * s.Tq * 4);
    a.need(2, nq);
    a.need(3, nk);
    a.need(4, nk);
    require_cuda(a);
#ifdef DD2_WITH_CUDA
    attention_forward_bf16_cuda(bf16(a, 0), a.f32(1), bf16(a, 2), bf16(a, 3), bf16(a, 4), s);
#endif
}

// attention_backward_bf16(dq, dk, dv, dout, q, k, v, o, lse, BH, Tq, Tk, D, scale, causal, levelQ, levelK):
// all bf16 but lse (float32, from attention_forward_bf16)
DD2_KERNEL(attention_backward_bf16, DD2_CUDA_IF_BUILT) {
    const AttentionShape s = read_shape(a, 9);
    const int64_t nq = s.BH * s.Tq * s.D * 2, nk = s.BH * s.Tk * s.D * 2;
    for (size_t i : {0, 3, 4, 7}) a.need(i, nq);
    for (size_t i : {1, 2, 5, 6}) a.need(i, nk);
    a.need(8, s.BH * s.Tq * 4);
    require_cuda(a);
#ifdef DD2_WITH_CUDA
    attention_backward_bf16_cuda(bf16(a, 0), bf16(a, 1), bf16(a, 2), bf16(a, 3), bf16(a, 4), bf16(a, 5),
                                 bf16(a, 6), bf16(a, 7), a.f32(8), s);
#endif
}

// attention_isa() -> "avx512f" | "avx2+fma" | "base": which compiled variant the kernels run
DD2_EXPORT(attention_isa) {
    return Napi::String::New(info.Env(), attention_isa());
}
