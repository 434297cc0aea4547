// 2-D convolution and nearest-neighbour upsampling, NCHW layout.
//   conv2d(x (N, Cin, H, W), w (Cout, Cin, KH, KW), b? (Cout)) -> (N, Cout, OH, OW),
//   OH = floor((H + 2·PH − KH) / stride) + 1, OW = floor((W + 2·PW − KW) / stride) + 1 with
//   padding = P (PH = PW = P) or [PH, PW] (zero padding per axis, as PyTorch's padding=(PH, PW)); groups = 1 only.
//   upsampleNearest(x (N, C, H, W), f) -> (N, C, H·f, W·f).
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape } from '../shape.js';
import { contiguous } from './shape.js';

export interface Conv2dOptions { stride?: number; padding?: number | readonly [number, number]; groups?: number }

function positiveInt(op: string, name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`dd2: ${op}: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Convolution with PyTorch's Conv2d weight layout; gradients for x, w and b. */
export function conv2d(x: Tensor, w: Tensor, b?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  check('conv2d', ['conv2d_forward', 'conv2d_backward_input', 'conv2d_backward_weight'], x, w, b);
  expectDtype('conv2d', x, 'float32', 'input');
  expectDtype('conv2d', w, 'float32', 'weight');
  if (b) expectDtype('conv2d', b, 'float32', 'bias');
  const stride = positiveInt('conv2d', 'stride', opts.stride ?? 1, 1);
  const padding = opts.padding ?? 0;
  if (typeof padding !== 'number' && (!Array.isArray(padding) || padding.length !== 2)) {
    throw new RangeError(`dd2: conv2d: padding must be a number or [padH, padW], got ${JSON.stringify(padding)}`);
  }
  const [ph, pw] = typeof padding === 'number' ? [padding, padding] : padding;
  positiveInt('conv2d', 'padding', ph, 0);
  positiveInt('conv2d', 'padding', pw, 0);
  if ((opts.groups ?? 1) !== 1) {
    throw new RangeError(`dd2: conv2d: groups = ${opts.groups} is not supported (only groups = 1)`);
  }
  if (x.rank !== 4) throw new RangeError(`dd2: conv2d: input must be 4-D (N, Cin, H, W), got ${fmtShape(x.shape)}`);
  if (w.rank !== 4) {
    throw new RangeError(`dd2: conv2d: weight must be 4-D (Cout, Cin, KH, KW), got ${fmtShape(w.shape)}`);
  }
  const [N, Cin, H, W] = x.shape;
  const [Cout, Cw, KH, KW] = w.shape;
  if (Cw !== Cin) {
    throw new RangeError(`dd2: conv2d: input ${fmtShape(x.shape)} has ${Cin} channels but weight ` +
      `${fmtShape(w.shape)} expects ${Cw}`);
  }
  if (b && (b.rank !== 1 || b.shape[0] !== Cout)) {
    throw new RangeError(`dd2: conv2d: bias ${fmtShape(b.shape)} must be [${Cout}] for weight ${fmtShape(w.shape)}`);
  }
  if (KH < 1 || KW < 1 || KH > H + 2 * ph || KW > W + 2 * pw) {
    throw new RangeError(`dd2: conv2d: kernel ${KH}x${KW} does not fit the padded input ` +
      `${H + 2 * ph}x${W + 2 * pw} (input ${fmtShape(x.shape)}, padding ${ph === pw ? ph : `(${ph}, ${pw})`})`);
  }
  const OH = Math.floor((H + 2 * ph - KH) / stride) + 1, OW = Math.floor((W + 2 * pw - KW) / stride) + 1;
  const geom = [N, Cin, H, W, Cout, KH, KW, stride, ph, pw] as const;
  const xc = contiguous(x), wc = contiguous(w), bc = b ? contiguous(b) : null;
  const out = empty([N, Cout, OH, OW], { device: x.device });
  native.conv2d_forward(out.id, xc.id, wc.id, bc ? bc.id : -1, ...geom);
  if (bc && bc !== b) bc.dispose();
  const inputs = b ? [x, w, b] : [x, w];
  record('conv2d', inputs, out, (dy) => {
    const dyc = contiguous(dy);
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(x.shape, { device: x.device });
      native.conv2d_backward_input(dx.id, dyc.id, wc.id, ...geom);
    }
    if (w.requiresGrad || b?.requiresGrad) {
      dw = empty(w.shape, { device: x.device });  // computed alongside db even when only b needs it
      db = b?.requiresGrad ? empty([Cout], { device: x.device }) : null;
      native.conv2d_backward_weight(dw.id, db ? db.id : -1, dyc.id, xc.id, ...geom);
    }
    return b ? [dx, w.requiresGrad ? dw : null, db] : [dx, w.requiresGrad ? dw : null];
  });
  if (!out.node) {
    if (xc !== x) xc.dispose();
    if (wc !== w) wc.dispose();
  }
  return out;
}

/** Repeats every pixel over a factor x factor block; the gradient sums each block. */
export function upsampleNearest(x: Tensor, factor: number): Tensor {
  check('upsampleNearest', ['upsample_nearest_forward', 'upsample_nearest_backward'], x);
  expectDtype('upsampleNearest', x, 'float32', 'input');
  const f = positiveInt('upsampleNearest', 'factor', factor, 1);
  if (x.rank !== 4) {
    throw new RangeError(`dd2: upsampleNearest: input must be 4-D (N, C, H, W), got ${fmtShape(x.shape)}`);
  }
  const [N, C, H, W] = x.shape;
  const xc = contiguous(x);
  const out = empty([N, C, H * f, W * f], { device: x.device });
  native.upsample_nearest_forward(out.id, xc.id, N * C, H, W, f);
  if (xc !== x) xc.dispose();
  return record('upsampleNearest', [x], out, (dy) => {
    const dyc = contiguous(dy);
    const dx = empty(x.shape, { device: x.device });
    native.upsample_nearest_backward(dx.id, dyc.id, N * C, H, W, f);
    return [dx];
  });
}
