// 2-D pooling and bilinear resizing on the CPU, NCHW float32 (planes of H x W; NC = N * C planes).
// Letters: H x W input, KH x KW window, SH / SW strides, PH / PW implicit padding on each side,
// OH x OW output with OH = (H + 2*PH - KH) / SH + 1 (floor; PyTorch's ceil_mode = False), likewise OW.
// The binding requires PH <= KH / 2 and PW <= KW / 2 (as PyTorch does), so every window holds at least
// one input element. Pool gradients are gathered (one writer per dx element), so results do not depend
// on the thread count.
#pragma once
#include <cstdint>

namespace dd2 {

struct Pool2dGeom {
    int64_t NC, H, W, KH, KW, SH, SW, PH, PW;
    int64_t OH() const { return (H + 2 * PH - KH) / SH + 1; }
    int64_t OW() const { return (W + 2 * PW - KW) / SW + 1; }
};

// y (NC, OH, OW) = max over each window (padding never wins; NaN propagates, as in PyTorch);
// idx (NC, OH, OW) int32 = h * W + w of the first maximum in row-major window order.
void max_pool2d_forward_f32_cpu(float* y, int32_t* idx, const float* x, const Pool2dGeom& g);
// dx (NC, H, W) overwritten: dx[h, w] = sum of dy over the windows whose idx is h * W + w.
void max_pool2d_backward_f32_cpu(float* dx, const float* dy, const int32_t* idx, const Pool2dGeom& g);

// y (NC, OH, OW) = window sum / divisor, divisor = KH * KW with count_include_pad (padding counts as 0s),
// else the number of input elements inside the window (PyTorch's avg_pool2d, ceil_mode = False).
void avg_pool2d_forward_f32_cpu(float* y, const float* x, const Pool2dGeom& g, bool count_include_pad);
// dx (NC, H, W) overwritten with the sum of dy / divisor over the windows containing each element.
void avg_pool2d_backward_f32_cpu(float* dx, const float* dy, const Pool2dGeom& g, bool count_include_pad);

// Bilinear resize (NC, H, W) -> (NC, OH, OW), no antialiasing. Source coordinate of output o along an axis
// of input size n and output size m, with scale = n / m in float32:
//   kResizeHalfPixel  (PyTorch F.interpolate 'bilinear', align_corners=False): src = scale * (o + 0.5) - 0.5,
//                     clamped below at 0;
//   kResizeAsymmetric (TF1 resize_bilinear, align_corners=False, half_pixel_centers=False): src = scale * o.
// i0 = floor(src) (at most n - 1), i1 = min(i0 + 1, n - 1), weights 1 - (src - i0) and src - i0.
enum ResizeMode : int { kResizeHalfPixel = 0, kResizeAsymmetric = 1 };
void resize_bilinear_forward_f32_cpu(float* y, const float* x, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                     int64_t OW, int mode);
// dx (NC, H, W) overwritten with the adjoint of the forward applied to dy (NC, OH, OW).
void resize_bilinear_backward_f32_cpu(float* dx, const float* dy, int64_t NC, int64_t H, int64_t W, int64_t OH,
                                      int64_t OW, int mode);

}  // namespace dd2
