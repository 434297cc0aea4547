// 2-D max / average pooling and bilinear resizing, NCHW float32, with gradients.
//   maxPool2d(x (N, C, H, W), kernel, {stride = kernel, padding = 0}) -> (N, C, OH, OW)
//   avgPool2d(x, kernel, {stride = kernel, padding = 0, countIncludePad = true}) -> (N, C, OH, OW)
//   OH = floor((H + 2·PH − KH) / SH) + 1, likewise OW (PyTorch's ceil_mode = False); padding at most half
//   the window. Sizes are a number (both axes) or [h, w].
//   resizeBilinear(x (N, C, H, W), [OH, OW], {mode}) -> (N, C, OH, OW), no antialiasing:
//     'pytorch' = F.interpolate(mode='bilinear', align_corners=False) (half-pixel centres),
//     'tf1'     = TF1 resize_bilinear(align_corners=False, half_pixel_centers=False) (src = dst · in/out).
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape } from '../shape.js';
import { contiguous } from './shape.js';

export type Size2 = number | readonly [number, number];
export interface Pool2dOptions { stride?: Size2; padding?: Size2 }
export interface AvgPool2dOptions extends Pool2dOptions {
  /** divide by the full window (padding counted as zeros; default true, as PyTorch) or only by the input
   *  elements inside it (false; Inception's pool branches in pytorch-fid) */
  countIncludePad?: boolean;
}
export type ResizeMode = 'pytorch' | 'tf1';
const RESIZE_MODES: Record<ResizeMode, number> = { pytorch: 0, tf1: 1 };

function pair(op: string, name: string, v: Size2, min: number): [number, number] {
  const [a, b] = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : [NaN, NaN];
  for (const x of [a, b]) {
    if (!Number.isInteger(x) || x < min) {
      throw new RangeError(`dd2: ${op}: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
    }
  }
  return [a, b];
}

/** Validated geometry [NC, H, W, KH, KW, SH, SW, PH, PW] and the output size. */
function poolGeom(op: string, x: Tensor, kernel: Size2, opts: Pool2dOptions) {
  if (x.rank !== 4) throw new RangeError(`dd2: ${op}: input must be 4-D (N, C, H, W), got ${fmtShape(x.shape)}`);
  const [KH, KW] = pair(op, 'kernel', kernel, 1);
  const [SH, SW] = pair(op, 'stride', opts.stride ?? [KH, KW], 1);
  const [PH, PW] = pair(op, 'padding', opts.padding ?? 0, 0);
  if (2 * PH > KH || 2 * PW > KW) {
    throw new RangeError(`dd2: ${op}: padding (${PH}, ${PW}) must be at most half the kernel ${KH}x${KW}`);
  }
  const [N, C, H, W] = x.shape;
  if (H + 2 * PH < KH || W + 2 * PW < KW) {
    throw new RangeError(`dd2: ${op}: kernel ${KH}x${KW} does not fit the padded input ${H + 2 * PH}x${W + 2 * PW} ` +
      `(input ${fmtShape(x.shape)})`);
  }
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1, OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  return { geom: [N * C, H, W, KH, KW, SH, SW, PH, PW] as const, out: [N, C, OH, OW] };
}

/** Max over each window; the gradient goes to the (first) maximum of each window. */
export function maxPool2d(x: Tensor, kernel: Size2, opts: Pool2dOptions = {}): Tensor {
  check('maxPool2d', ['max_pool2d_forward', 'max_pool2d_backward'], x);
  expectDtype('maxPool2d', x, 'float32');
  const { geom, out: shape } = poolGeom('maxPool2d', x, kernel, opts);
  const xc = contiguous(x);
  const y = empty(shape, { device: x.device });
  const idx = empty(shape, { device: x.device, dtype: 'int32' });
  native.max_pool2d_forward(y.id, idx.id, xc.id, ...geom);
  if (xc !== x) xc.dispose();
  record('maxPool2d', [x], y, (dy) => {
    const dyc = contiguous(dy);
    const dx = empty(x.shape, { device: x.device });
    native.max_pool2d_backward(dx.id, dyc.id, idx.id, ...geom);
    return [dx];
  });
  if (!y.node) idx.dispose();
  return y;
}

/** Mean over each window (see AvgPool2dOptions.countIncludePad for the divisor). */
export function avgPool2d(x: Tensor, kernel: Size2, opts: AvgPool2dOptions = {}): Tensor {
  check('avgPool2d', ['avg_pool2d_forward', 'avg_pool2d_backward'], x);
  expectDtype('avgPool2d', x, 'float32');
  const { geom, out: shape } = poolGeom('avgPool2d', x, kernel, opts);
  const include = opts.countIncludePad ?? true;
  const xc = contiguous(x);
  const y = empty(shape, { device: x.device });
  native.avg_pool2d_forward(y.id, xc.id, ...geom, include);
  if (xc !== x) xc.dispose();
  return record('avgPool2d', [x], y, (dy) => {
    const dyc = contiguous(dy);
    const dx = empty(x.shape, { device: x.device });
    native.avg_pool2d_backward(dx.id, dyc.id, ...geom, include);
    return [dx];
  });
}

/** Bilinear resize of every (H, W) plane to `size` = [OH, OW] (or OH = OW = size). */
export function resizeBilinear(x: Tensor, size: Size2, opts: { mode?: ResizeMode } = {}): Tensor {
  check('resizeBilinear', ['resize_bilinear_forward', 'resize_bilinear_backward'], x);
  expectDtype('resizeBilinear', x, 'float32');
  const mode = opts.mode ?? 'pytorch';
  if (!(mode in RESIZE_MODES)) {
    throw new RangeError(`dd2: resizeBilinear: mode must be 'pytorch' or 'tf1', got '${String(mode)}'`);
  }
  if (x.rank !== 4) throw new RangeError(`dd2: resizeBilinear: input must be 4-D (N, C, H, W), got ${fmtShape(x.shape)}`);
  const [OH, OW] = pair('resizeBilinear', 'size', size, 1);
  const [N, C, H, W] = x.shape;
  if (H < 1 || W < 1) throw new RangeError(`dd2: resizeBilinear: input ${fmtShape(x.shape)} has an empty plane`);
  const dims = [N * C, H, W, OH, OW, RESIZE_MODES[mode]] as const;
  const xc = contiguous(x);
  const y = empty([N, C, OH, OW], { device: x.device });
  native.resize_bilinear_forward(y.id, xc.id, ...dims);
  if (xc !== x) xc.dispose();
  return record('resizeBilinear', [x], y, (dy) => {
    const dyc = contiguous(dy);
    const dx = empty(x.shape, { device: x.device });
    native.resize_bilinear_backward(dx.id, dyc.id, ...dims);
    return [dx];
  });
}
