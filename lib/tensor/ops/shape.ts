// Layout ops: reshape, permute/transpose, slice, expand, contiguous, concat, squeeze/unsqueeze.
// reshape (of a contiguous tensor), permute, slice and expand are views sharing storage; their
// backward rules map the gradient back through the inverse layout change.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty, zeros } from '../create.js';
import { check } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { sumToShape } from './reduce.js';
import { contiguousStrides, fmtShape, normAxis, sizeOf, shapeEq, type Shape } from '../shape.js';

function view(x: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  x.assertLive();
  return new Tensor(x.storage, shape, x.dtype, strides, offset);
}

/** Dense copy (offset 0, row-major). Returns x itself when it is already dense. */
export function contiguous(x: Tensor): Tensor {
  x.assertLive();
  if (x.isDense()) return x;
  return copy(x);
}

/** Always a new dense tensor with x's values. */
export function copy(x: Tensor): Tensor {
  check('copy', ['copy_strided'], x);
  const out = empty(x.shape, { dtype: x.dtype, device: x.device });
  native.copy_strided(out.storage.id, 0, contiguousStrides(x.shape), x.storage.id, x.offset, [...x.strides],
    [...x.shape]);
  return record('copy', [x], out, (dy) => [dy]);
}

function resolveShape(x: Tensor, shape: Shape): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const rest = sizeOf(out.filter((_, i) => i !== neg));
    out[neg] = rest === 0 ? 0 : x.size / rest;
  }
  if (!out.every((d) => Number.isInteger(d) && d >= 0) || sizeOf(out) !== x.size) {
    throw new RangeError(`dd2: reshape: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  }
  return out;
}

/** Same elements, new shape (one dimension may be -1). A view when x is contiguous. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const target = resolveShape(x, shape);
  const src = x.isContiguous() ? x : copy(x);
  const out = view(src, target, contiguousStrides(target), src.offset);
  if (src !== x) src.dispose();
  return record('reshape', [x], out, (dy) => [reshape(dy, x.shape)]);
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.size]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank + 1, 'unsqueeze');
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank, 'squeeze');
  if (x.shape[a] !== 1) throw new RangeError(`dd2: squeeze: axis ${axis} of ${fmtShape(x.shape)} is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Reorders axes: out.shape[i] = x.shape[dims[i]]. A view. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.rank || new Set(dims.map((d) => normAxis(d, x.rank, 'permute'))).size !== x.rank) {
    throw new RangeError(`dd2: permute: ${fmtShape(dims)} is not a permutation of ${x.rank} axes`);
  }
  const d = dims.map((v) => normAxis(v, x.rank, 'permute'));
  const out = view(x, d.map((i) => x.shape[i]), d.map((i) => x.strides[i]), x.offset);
  const inv = new Array<number>(d.length);
  d.forEach((v, i) => { inv[v] = i; });
  return record('permute', [x], out, (dy) => [contiguous(permute(dy, inv))]);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const dims = Array.from({ length: x.rank }, (_, i) => i);
  const i = normAxis(a, x.rank, 'transpose'), j = normAxis(b, x.rank, 'transpose');
  [dims[i], dims[j]] = [dims[j], dims[i]];
  return permute(x, dims);
}

/** x[..., start:end, ...] along `axis` (a view). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis(axis, x.rank, 'slice');
  const n = x.shape[a];
  const s = Math.max(0, start < 0 ? start + n : start), e = Math.min(n, end < 0 ? end + n : end);
  if (!(Number.isInteger(s) && Number.isInteger(e) && s <= e)) {
    throw new RangeError(`dd2: slice: [${start}, ${end}) is not a valid range of axis ${axis} (size ${n})`);
  }
  const shape = [...x.shape];
  shape[a] = e - s;
  const out = view(x, shape, x.strides, x.offset + s * x.strides[a]);
  return record('slice', [x], out, (dy) => {
    const dx = zeros(x.shape, { device: x.device });
    const dyc = contiguous(dy);
    const st = contiguousStrides(x.shape);
    native.copy_strided(dx.storage.id, s * st[a], st, dyc.id, 0, contiguousStrides(dy.shape), [...dy.shape]);
    if (dyc !== dy) dyc.dispose();
    return [dx];
  });
}

/** Broadcasts size-1 axes (and new leading axes) to `shape` without copying (stride 0). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const r = shape.length, off = r - x.rank;
  if (off < 0) throw new RangeError(`dd2: expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  const strides = new Array<number>(r).fill(0);
  for (let i = 0; i < x.rank; i++) {
    if (x.shape[i] === shape[off + i]) strides[off + i] = x.strides[i];
    else if (x.shape[i] !== 1) throw new RangeError(`dd2: expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (shapeEq(x.shape, shape)) return view(x, shape, x.strides, x.offset);
  const out = view(x, shape, strides, x.offset);
  return record('expand', [x], out, (dy) => [sumToShape(dy, x.shape)]);
}

/** Concatenates along `axis`; all other dimensions must match. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (!xs.length) throw new RangeError('dd2: concat: no tensors');
  const a = normAxis(axis, xs[0].rank, 'concat');
  check('concat', ['copy_strided'], ...xs);
  const shape = [...xs[0].shape];
  shape[a] = 0;
  for (const x of xs) {
    if (x.rank !== shape.length || x.dtype !== xs[0].dtype ||
        x.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      throw new RangeError(`dd2: concat: ${x.describe()} does not match ${xs[0].describe()} outside axis ${axis}`);
    }
    shape[a] += x.shape[a];
  }
  const out = empty(shape, { dtype: xs[0].dtype, device: xs[0].device });
  const st = contiguousStrides(shape);
  let pos = 0;
  const starts: number[] = [];
  for (const x of xs) {
    starts.push(pos);
    native.copy_strided(out.storage.id, pos * st[a], st, x.storage.id, x.offset, [...x.strides], [...x.shape]);
    pos += x.shape[a];
  }
  return record('concat', [...xs], out, (dy) =>
    xs.map((x, i) => contiguous(slice(dy, a, starts[i], starts[i] + x.shape[a]))));
}

export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  return concat(xs.map((x) => unsqueeze(x, axis)), axis);
}

/** The same values with no gradient history (a view sharing storage): gradients stop here. */
export function detach(x: Tensor): Tensor {
  return view(x, x.shape, x.strides, x.offset);
}
