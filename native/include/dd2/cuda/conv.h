// 2-D convolution (NCHW, groups = 1) and nearest-neighbour upsampling on the GPU, float32: the same
// contracts as dd2/cpu/conv.h (pointers are device memory; every call enqueues on cuda::stream()).
// Letters: N images, Cin/Cout channels, H x W input, KH x KW kernel, OH x OW output; NC = N * C planes,
// f factor. Convolution runs as im2col / col2im kernels + gemm_f32_cuda over chunks of images whose
// column buffer stays under DD2_CONV_COL_BYTES (default 64 MB), as on the CPU. No float atomics: results
// are deterministic (col2im and the upsampling gradient gather their terms in the CPU's order).
#pragma once
#include <cstdint>

#include "dd2/cpu/conv.h"   // Conv2dGeom

namespace dd2 {

// y (N, Cout, OH, OW) = conv(x (N, Cin, H, W), w (Cout, Cin, KH, KW)) + b (Cout; nullptr = none)
void conv2d_forward_f32_cuda(float* y, const float* x, const float* w, const float* b, const Conv2dGeom& g);
// dx (N, Cin, H, W) overwritten with the gradient w.r.t. x given dy (N, Cout, OH, OW)
void conv2d_backward_input_f32_cuda(float* dx, const float* dy, const float* w, const Conv2dGeom& g);
// dw (Cout, Cin, KH, KW) overwritten; db (Cout; nullptr = skip) = sum of dy over N, OH, OW (in double)
void conv2d_backward_weight_f32_cuda(float* dw, float* db, const float* dy, const float* x, const Conv2dGeom& g);

// y (NC, H*f, W*f): each x element repeated over an f x f block
void upsample_nearest_forward_f32_cuda(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t f);
// dx (NC, H, W) = sum of dy over each f x f block (overwritten)
void upsample_nearest_backward_f32_cuda(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t f);

}  // namespace dd2
