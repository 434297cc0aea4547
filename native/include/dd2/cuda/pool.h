// 2-D pooling and bilinear resizing on the GPU, float32: the same contracts as dd2/cpu/pool.h (pointers are
// device memory; every call enqueues on cuda::stream()). Gradients are gathered, one thread per dx element,
// so no atomics are used and results are deterministic.
#pragma once
#include <cstdint>

#include "dd2/cpu/pool.h"   // Pool2dGeom, ResizeMode

namespace dd2 {

void max_pool2d_forward_f32_cuda(float* y, int32_t* idx, const float* x, const Pool2dGeom& g);
void max_pool2d_backward_f32_cuda(float* dx, const float* dy, const int32_t* idx, const Pool2dGeom& g);
void avg_pool2d_forward_f32_cuda(float* y, const float* x, const Pool2dGeom& g, bool count_include_pad);
void avg_pool2d_backward_f32_cuda(float* dx, const float* dy, const Pool2dGeom& g, bool count_include_pad);
void resize_bilinear_forward_f32_cuda(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                      int64_t OW, int mode);
void resize_bilinear_backward_f32_cuda(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                       int64_t OW, int mode);

}  // namespace dd2
