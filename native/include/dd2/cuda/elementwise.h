// Elementwise, strided-copy and reduction kernels on the GPU: the same contracts as dd2/cpu/elementwise.h
// (pointers are device memory; every call enqueues on cuda::stream()).
// Op codes match lib/tensor/native.ts (UnaryOp, BinaryOp, ScalarOp, ReduceOp).
#pragma once
#include <cstdint>
#include <vector>

namespace dd2 {

void fill_f32_cuda(float* y, int64_t n, float v);
void fill_i32_cuda(int32_t* y, int64_t n, int32_t v);
void cast_i32_to_f32_cuda(float* y, const int32_t* x, int64_t n);
void cast_f32_to_i32_cuda(int32_t* y, const float* x, int64_t n);
void unary_forward_f32_cuda(int op, float* y, const float* x, int64_t n);
void unary_backward_f32_cuda(int op, float* dx, const float* dy, const float* x, const float* y, int64_t n);
// y (shape, contiguous) = f(a, b) with a and b read through strides (0 on broadcast axes)
void binary_forward_f32_cuda(int op, float* y, const float* a, const float* b, const std::vector<int64_t>& shape,
                            const std::vector<int64_t>& astr, const std::vector<int64_t>& bstr);
void scalar_forward_f32_cuda(int op, float* y, const float* x, float s, int64_t n);
void axpy_f32_cuda(float* y, const float* x, int64_t n, float alpha);
// 4-byte elements; offsets and strides in elements
void copy_strided_cuda(uint32_t* dst, int64_t doff, const std::vector<int64_t>& dstr, const uint32_t* src,
                      int64_t soff, const std::vector<int64_t>& sstr, const std::vector<int64_t>& shape);
// x (outer, n, inner) -> y (outer, inner)
void reduce_forward_f32_cuda(int op, float* y, const float* x, int64_t outer, int64_t n, int64_t inner);
void argmax_f32_cuda(int32_t* y, const float* x, int64_t outer, int64_t n, int64_t inner);
void scatter_argmax_backward_f32_cuda(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                                     int64_t inner);
double sum_squares_f32_cuda(const float* x, int64_t n);

}  // namespace dd2
