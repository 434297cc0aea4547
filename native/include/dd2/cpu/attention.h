// Fused scaled-dot-product attention on the CPU (flash-attention style, float32).
// Letters: BH batch × heads, Tq query rows, Tk keys, D head dim. q (BH, Tq, D), k/v (BH, Tk, D),
// o (BH, Tq, D), lse (BH, Tq) = log Σ_j exp(scale · q_i·k_j) over visible keys (saved for backward).
// Mask: with levels, key j is visible to query i iff level_k[j] <= level_q[i]; else with causal, iff
// j <= i + Tk - Tq; else all keys are visible. Fully masked rows give o = 0, lse = -inf, zero gradients.
#pragma once
#include <cstdint>

namespace dd2 {

struct AttentionShape {
    int64_t BH = 0, Tq = 0, Tk = 0, D = 0;
    float scale = 1.0f;
    bool causal = false;
    const int32_t* level_q = nullptr;   // Tq entries, or null (then level_k is null too)
    const int32_t* level_k = nullptr;   // Tk entries
};

void attention_forward_f32_cpu(float* o, float* lse, const float* q, const float* k, const float* v,
                               const AttentionShape& s);

// Gradients are overwritten. dq (BH, Tq, D), dk/dv (BH, Tk, D); o and lse come from the forward.
void attention_backward_f32_cpu(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                const float* k, const float* v, const float* o, const float* lse,
                                const AttentionShape& s);

const char* attention_isa();   // the vector width the dispatch picked: "avx512f", "avx2+fma" or "base"

}  // namespace dd2
