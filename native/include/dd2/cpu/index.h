// Indexing kernels on the CPU: embedding lookup and gather along an axis (float32 data, int32 indices).
// Letters: n looked-up rows, dim row width, vocab table rows; gather views x as (outer, n, inner) and
// idx/y as (outer, k, inner), the gathered axis being the middle one. Indices are checked first: an
// index outside its range throws dd2::RangeError naming the index and its position.
#pragma once
#include <cstdint>

namespace dd2 {

// y (n, dim) = weight[idx[i]]; weight (vocab, dim)
void embedding_forward_f32_cpu(float* y, const float* weight, const int32_t* idx, int64_t n, int64_t dim,
                               int64_t vocab);
// dweight (vocab, dim) = sum over i with idx[i] == v of dy[i] (overwritten; deterministic order)
void embedding_backward_f32_cpu(float* dweight, const float* dy, const int32_t* idx, int64_t n, int64_t dim,
                                int64_t vocab);
// y[o, j, i] = x[o, idx[o, j, i], i]
void gather_forward_f32_cpu(float* y, const float* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                            int64_t k);
// dx (outer, n, inner) = scatter-add of dy at idx (overwritten; repeated indices accumulate in j order)
void gather_backward_f32_cpu(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                             int64_t inner, int64_t k);

}  // namespace dd2
