// Normalisation layers as ops: layerNorm and rmsNorm over the last axis (C), groupNorm over groups of
// channels of (N, C, ...spatial). Statistics (mean, rstd = 1/sqrt(var + eps)) are saved by the forward
// kernel and reused by the backward; gradients flow to x, weight and bias.
// Dimension letters: N batch, C channels / features, HW spatial size (product of trailing axes),
// G groups; rows = all axes but the last, flattened, for layer and RMS norm.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape, sizeOf } from '../shape.js';
import { contiguous } from './shape.js';

type Param = Tensor | null | undefined;
const ids = (t: Tensor | null): number => (t ? t.id : -1);

/** What differs between the three norms: kernel calls over dense buffers, and the statistic sizes. */
interface NormPlan {
  op: string;
  x: Tensor;
  params: Param[];        // weight, bias (bias absent for RMS norm)
  nstats: 1 | 2;          // [mean, rstd] or [rstd]
  statLen: number;
  forward(y: Tensor, stats: Tensor[], x: Tensor, p: (Tensor | null)[]): void;
  backward(dx: Tensor | null, dp: (Tensor | null)[], dy: Tensor, x: Tensor, p: (Tensor | null)[], stats: Tensor[]): void;
}

function checkParam(op: string, p: Param, C: number, what: string): void {
  if (!p) return;
  expectDtype(op, p, 'float32', what);
  if (p.rank !== 1 || p.shape[0] !== C) {
    throw new RangeError(`dd2: ${op}: ${what} must have shape [${C}], got ${fmtShape(p.shape)}`);
  }
}

function checkEps(op: string, eps: number): void {
  if (!(eps >= 0 && Number.isFinite(eps))) throw new RangeError(`dd2: ${op}: eps must be finite and >= 0, got ${eps}`);
}

function runNorm(plan: NormPlan): Tensor {
  const { x, params } = plan;
  const dev = x.device;
  const xc = contiguous(x);
  const pc = params.map((p) => (p ? contiguous(p) : null));
  const y = empty(x.shape, { device: dev });
  const stats = Array.from({ length: plan.nstats }, () => empty([plan.statLen], { device: dev }));
  plan.forward(y, stats, xc, pc);
  const present = params.filter((p): p is Tensor => !!p);
  record(plan.op, [x, ...present], y, (dy) => {
    const dyc = contiguous(dy);
    const dx = x.requiresGrad ? empty(x.shape, { device: dev }) : null;
    const dp = params.map((p) => (p && p.requiresGrad ? empty(p.shape, { device: dev }) : null));
    plan.backward(dx, dp, dyc, xc, pc, stats);
    return [dx, ...dp.filter((_, i) => !!params[i])];
  });
  if (!y.node) {
    for (const t of [xc, ...pc]) if (t && t !== x && !params.includes(t)) t.dispose();
    for (const s of stats) s.dispose();
  }
  return y;
}

/** (x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight and bias (C) optional. */
export function layerNorm(x: Tensor, weight?: Param, bias?: Param, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  check(op, ['layer_norm_forward', 'layer_norm_backward'], x, weight, bias);
  expectDtype(op, x, 'float32');
  if (x.rank < 1) throw new RangeError(`dd2: ${op}: input must have at least one axis, got ${x.describe()}`);
  const C = x.shape[x.rank - 1], rows = sizeOf(x.shape.slice(0, -1));
  checkParam(op, weight, C, 'weight');
  checkParam(op, bias, C, 'bias');
  checkEps(op, eps);
  return runNorm({
    op, x, params: [weight, bias], nstats: 2, statLen: rows,
    forward: (y, [mean, rstd], xc, [w, b]) =>
      native.layer_norm_forward(y.id, mean.id, rstd.id, xc.id, ids(w), ids(b), rows, C, eps),
    backward: (dx, [dw, db], dy, xc, [w], [mean, rstd]) =>
      native.layer_norm_backward(ids(dx), ids(dw), ids(db), dy.id, xc.id, ids(w), mean.id, rstd.id, rows, C),
  });
}

/** RMSNorm as in LlamaGen / T5: x * rsqrt(mean(x²) + eps) * weight over the last axis; weight (C) optional. */
export function rmsNorm(x: Tensor, weight?: Param, eps = 1e-5): Tensor {
  const op = 'rmsNorm';
  check(op, ['rms_norm_forward', 'rms_norm_backward'], x, weight);
  expectDtype(op, x, 'float32');
  if (x.rank < 1) throw new RangeError(`dd2: ${op}: input must have at least one axis, got ${x.describe()}`);
  const C = x.shape[x.rank - 1], rows = sizeOf(x.shape.slice(0, -1));
  checkParam(op, weight, C, 'weight');
  checkEps(op, eps);
  return runNorm({
    op, x, params: [weight], nstats: 1, statLen: rows,
    forward: (y, [rstd], xc, [w]) => native.rms_norm_forward(y.id, rstd.id, xc.id, ids(w), rows, C, eps),
    backward: (dx, [dw], dy, xc, [w], [rstd]) =>
      native.rms_norm_backward(ids(dx), ids(dw), dy.id, xc.id, ids(w), rstd.id, rows, C),
  });
}

/**
 * Group norm of x (N, C, ...spatial): statistics over each group of C/groups channels and all spatial
 * positions, then a per-channel affine; weight and bias (C) optional. groups = 1 normalises each sample
 * over everything, groups = C is instance norm.
 */
export function groupNorm(x: Tensor, groups: number, weight?: Param, bias?: Param, eps = 1e-5): Tensor {
  const op = 'groupNorm';
  check(op, ['group_norm_forward', 'group_norm_backward'], x, weight, bias);
  expectDtype(op, x, 'float32');
  if (x.rank < 2) throw new RangeError(`dd2: ${op}: input must be (N, C, ...spatial), got ${x.describe()}`);
  const N = x.shape[0], C = x.shape[1], HW = sizeOf(x.shape.slice(2)), G = groups;
  if (!Number.isInteger(G) || G < 1 || C % G !== 0) {
    throw new RangeError(`dd2: ${op}: ${C} channels of ${fmtShape(x.shape)} do not split into ${groups} groups`);
  }
  checkParam(op, weight, C, 'weight');
  checkParam(op, bias, C, 'bias');
  checkEps(op, eps);
  return runNorm({
    op, x, params: [weight, bias], nstats: 2, statLen: N * G,
    forward: (y, [mean, rstd], xc, [w, b]) =>
      native.group_norm_forward(y.id, mean.id, rstd.id, xc.id, ids(w), ids(b), N, C, HW, G, eps),
    backward: (dx, [dw, db], dy, xc, [w], [mean, rstd]) =>
      native.group_norm_backward(ids(dx), ids(dw), ids(db), dy.id, xc.id, ids(w), mean.id, rstd.id, N, C, HW, G),
  });
}
