// Indexing kernels on the GPU: the same contracts as dd2/cpu/index.h (pointers are device memory; every
// call enqueues on cuda::stream()). Letters: n looked-up rows, dim row width, vocab table rows; gather
// views x as (outer, n, inner) and idx/y as (outer, k, inner).
// Index values are checked on the device before anything is written; the first bad position is read
// back (one synchronisation per call) and thrown as the CPU's RangeError message.
// Backward passes are deterministic, no float atomics: every sum runs in index order, as on the CPU, so
// results equal the CPU kernels bit for bit. Embedding backward (and gather backward with long index
// axes and few columns) stably sorts the indices by destination (CUB radix sort) and sums each
// destination's segment in one thread; gather backward otherwise gives each (o, i) column to a thread.
#pragma once
#include <cstdint>

namespace dd2 {

// y (n, dim) = weight[idx[i]]; weight (vocab, dim)
void embedding_forward_f32_cuda(float* y, const float* weight, const int32_t* idx, int64_t n, int64_t dim,
                                int64_t vocab);
// dweight (vocab, dim) = sum over i with idx[i] == v of dy[i] (overwritten; sums in i order)
void embedding_backward_f32_cuda(float* dweight, const float* dy, const int32_t* idx, int64_t n, int64_t dim,
                                 int64_t vocab);
// y[o, j, i] = x[o, idx[o, j, i], i]
void gather_forward_f32_cuda(float* y, const float* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                             int64_t k);
// dx (outer, n, inner) = scatter-add of dy at idx (overwritten; repeated indices accumulate in j order)
void gather_backward_f32_cuda(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                              int64_t inner, int64_t k);

}  // namespace dd2
