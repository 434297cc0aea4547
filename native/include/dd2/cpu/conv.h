// 2-D convolution (NCHW, groups = 1) and nearest-neighbour upsampling on the CPU, float32.
// Letters: N images, Cin/Cout channels, H x W input, KH x KW kernel, OH x OW output with
// OH = (H + 2*padH - KH) / stride + 1 (floor), OW likewise with padW (zero padding per axis); NC = N * C planes for upsampling, f factor.
// Convolution runs as im2col + GEMM over chunks of images (bounded column buffer).
#pragma once
#include <cstdint>

namespace dd2 {

struct Conv2dGeom {
    int64_t N, Cin, H, W, Cout, KH, KW, stride, padH, padW;
    int64_t OH() const { return (H + 2 * padH - KH) / stride + 1; }
    int64_t OW() const { return (W + 2 * padW - KW) / stride + 1; }
};

// y (N, Cout, OH, OW) = conv(x (N, Cin, H, W), w (Cout, Cin, KH, KW)) + b (Cout; nullptr = none)
void conv2d_forward_f32_cpu(float* y, const float* x, const float* w, const float* b, const Conv2dGeom& g);
// dx (N, Cin, H, W) overwritten with the gradient w.r.t. x given dy (N, Cout, OH, OW)
void conv2d_backward_input_f32_cpu(float* dx, const float* dy, const float* w, const Conv2dGeom& g);
// dw (Cout, Cin, KH, KW) overwritten with sum over images of dy (x) im2col(x); db (Cout; nullptr = skip)
// = sum of dy over N, OH, OW (accumulated in double)
void conv2d_backward_weight_f32_cpu(float* dw, float* db, const float* dy, const float* x, const Conv2dGeom& g);

// y (NC, H*f, W*f): each x element repeated over an f x f block
void upsample_nearest_forward_f32_cpu(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t f);
// dx (NC, H, W) = sum of dy over each f x f block (overwritten)
void upsample_nearest_backward_f32_cpu(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t f);

}  // namespace dd2
