// Fused scaled-dot-product attention on the GPU (flash-attention-2 structure). Letters: BH batch × heads,
// Tq query rows, Tk keys, D head dim; q (BH, Tq, D), k/v (BH, Tk, D), o (BH, Tq, D), lse (BH, Tq) float32.
// Same contract, mask rules and AttentionShape as dd2/cpu/attention.h (levels, else causal with the
// diagonal shifted by Tk - Tq; fully masked rows give o = 0, lse = -inf, zero gradients). Pointers,
// including the level arrays, are device memory; calls enqueue on cuda::stream(). Deterministic: every
// gradient element is written by one thread, the backward recomputes P in a dk/dv pass over key tiles and
// a separate dq pass over query tiles (no atomics). Sizes the kernels cannot take throw RangeError.
#pragma once
#include <cstdint>

#include "dd2/cpu/attention.h"

namespace dd2 {

// float32 (CUDA cores, float accumulation, Di = rowsum(dout ⊙ o) in double like the CPU); any D <= 256.
void attention_forward_f32_cuda(float* o, float* lse, const float* q, const float* k, const float* v,
                                const AttentionShape& s);
void attention_backward_f32_cuda(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                 const float* k, const float* v, const float* o, const float* lse,
                                 const AttentionShape& s);
constexpr int64_t kAttentionCudaMaxD = 256;

// bf16 (uint16 storage holding bfloat16 bits) on tensor cores (mma.sync m16n8k16, float32 accumulation
// and softmax state); lse stays float32, gradients are bf16. D in {32, 64, 96, 128}; needs sm_80+.
void attention_forward_bf16_cuda(uint16_t* o, float* lse, const uint16_t* q, const uint16_t* k,
                                 const uint16_t* v, const AttentionShape& s);
void attention_backward_bf16_cuda(uint16_t* dq, uint16_t* dk, uint16_t* dv, const uint16_t* dout,
                                  const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* o,
                                  const float* lse, const AttentionShape& s);

}  // namespace dd2
