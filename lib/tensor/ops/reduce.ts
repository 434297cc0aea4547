// Reductions over axes: sum, mean, max, min, logsumexp, argmax, and sumToShape (the backward of
// broadcasting). Kernels reduce the middle axis of a (outer, n, inner) layout; several axes reduce
// one after another.
import { native, ReduceOp, type ReduceName } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape, normAxis, sizeOf, type Shape } from '../shape.js';
import { contiguous, expand, permute, reshape } from './shape.js';
import { binary, mulScalar, unary } from './elementwise.js';

type Axes = number | readonly number[] | undefined;

function normAxes(x: Tensor, axes: Axes, op: string): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return [...new Set(list.map((a) => normAxis(a, x.rank, op)))].sort((a, b) => a - b);
}

/** One kernel call: reduces axis `a` of a dense tensor, keeping it as size 1. */
function reduceOne(x: Tensor, a: number, op: ReduceName): Tensor {
  const outer = sizeOf(x.shape.slice(0, a)), n = x.shape[a], inner = sizeOf(x.shape.slice(a + 1));
  const shape = [...x.shape];
  shape[a] = 1;
  const y = empty(shape, { device: x.device });
  native.reduce_forward(ReduceOp[op], y.id, x.id, outer, n, inner);
  return y;
}

function keptShape(x: Tensor, ax: number[]): number[] {
  return x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
}

function finalShape(x: Tensor, ax: number[], keepDims: boolean): number[] {
  return keepDims ? keptShape(x, ax) : x.shape.filter((_, i) => !ax.includes(i));
}

/** Raw reduction without autograd (dense input), returning keep-dims shape. */
function reduceRaw(x: Tensor, ax: number[], op: ReduceName): Tensor {
  let cur = contiguous(x);
  for (const a of ax) {
    const next = reduceOne(cur, a, op);
    if (cur !== x) cur.dispose();
    cur = next;
  }
  return cur === x ? reshape(x, x.shape) : cur;
}

export function sum(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  check('sum', ['reduce_forward'], x);
  expectDtype('sum', x, 'float32');
  const ax = normAxes(x, axes, 'sum');
  const kept = reduceRaw(x, ax, 'sum');
  const out = keepDims ? kept : reshapeDrop(kept, finalShape(x, ax, false));
  return record('sum', [x], out, (dy) => [contiguous(expand(reshape(dy, keptShape(x, ax)), x.shape))]);
}

export function mean(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  const ax = normAxes(x, axes, 'mean');
  const n = ax.reduce((p, a) => p * x.shape[a], 1);
  const s = sum(x, ax, keepDims);
  const out = mulScalar(s, n ? 1 / n : NaN);
  if (!out.node) s.dispose();   // s is the recorded input of out's node while gradients flow
  return out;
}

/** Max (or min) over axes; the gradient flows to the first maximal element of each slice. */
function extremum(x: Tensor, axes: Axes, keepDims: boolean, op: 'max' | 'min'): Tensor {
  check(op, ['reduce_forward', 'argmax', 'scatter_argmax_backward'], x);
  expectDtype(op, x, 'float32');
  const ax = normAxes(x, axes, op);
  if (ax.length !== 1) {
    // Several axes: move them last, flatten, reduce once.
    const rest = x.shape.map((_, i) => i).filter((i) => !ax.includes(i));
    const xp = contiguous(permute(x, [...rest, ...ax]));
    const flat = reshape(xp, [...rest.map((i) => x.shape[i]), -1]);
    const r = extremum(flat, -1, false, op);
    return reshape(r, finalShape(x, ax, keepDims));
  }
  const a = ax[0];
  const outer = sizeOf(x.shape.slice(0, a)), n = x.shape[a], inner = sizeOf(x.shape.slice(a + 1));
  if (n === 0) throw new RangeError(`dd2: ${op}: axis ${a} of ${fmtShape(x.shape)} is empty`);
  const xc = contiguous(x);
  const kept = reduceOne(xc, a, op);
  const out = keepDims ? kept : reshapeDrop(kept, finalShape(x, ax, false));
  record(op, [x], out, (dy) => {
    const src = op === 'max' ? xc : unary(xc, 'neg');
    const idx = empty([outer * inner], { dtype: 'int32', device: x.device });
    native.argmax(idx.id, src.id, outer, n, inner);
    const dx = empty(x.shape, { device: x.device });
    const dyc = contiguous(dy);
    native.scatter_argmax_backward(dx.id, dyc.id, idx.id, outer, n, inner);
    return [dx];
  });
  if (xc !== x) release(out, xc);
  return out;
}

export const max = (x: Tensor, axes?: Axes, keepDims = false): Tensor => extremum(x, axes, keepDims, 'max');
export const min = (x: Tensor, axes?: Axes, keepDims = false): Tensor => extremum(x, axes, keepDims, 'min');

/** log(sum(exp(x))) over one axis, computed stably. */
export function logsumexp(x: Tensor, axis = -1, keepDims = false): Tensor {
  check('logsumexp', ['reduce_forward'], x);
  expectDtype('logsumexp', x, 'float32');
  const a = normAxis(axis, x.rank, 'logsumexp');
  const xc = contiguous(x);
  const kept = reduceOne(xc, a, 'logsumexp');
  const out = keepDims ? kept : reshape(kept, finalShape(x, [a], false));
  record('logsumexp', [x], out, (dy) => {
    // d/dx = softmax(x) * dy = exp(x - lse) * dy
    const diff = binary(xc, kept, 'sub');
    const p = unary(diff, 'exp');
    return [binary(p, reshape(dy, kept.shape), 'mul')];
  });
  if (out !== kept) release(out, kept);
  if (xc !== x) release(out, xc);
  return out;
}

/** Index of the maximum along an axis (int32; first index on ties). */
export function argmax(x: Tensor, axis = -1): Tensor {
  check('argmax', ['argmax'], x);
  const a = normAxis(axis, x.rank, 'argmax');
  const xc = contiguous(x);
  const out = empty(x.shape.filter((_, i) => i !== a), { dtype: 'int32', device: x.device });
  native.argmax(out.id, xc.id, sizeOf(x.shape.slice(0, a)), x.shape[a], sizeOf(x.shape.slice(a + 1)));
  if (xc !== x) xc.dispose();
  return out;
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting `shape` to g.shape). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  const off = g.rank - shape.length;
  const ax: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) ax.push(i);
  if (!ax.length) return contiguous(reshape(g, shape));
  const s = sum(g, ax, true);
  const out = reshape(s, shape);
  s.dispose();
  return out;
}

function reshapeDrop(kept: Tensor, shape: number[]): Tensor {
  const out = reshape(kept, shape);
  kept.dispose();
  return out;
}

/** Disposes temporaries an op made, unless its output recorded a node that may still use them. */
function release(out: Tensor, ...temps: Tensor[]): void {
  if (out.node) return;
  for (const t of temps) t.dispose();
}
