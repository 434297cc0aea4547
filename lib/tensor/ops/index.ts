// Indexing ops with int32 indices: embedding lookup and gather along an axis (like torch.gather).
//   embedding(weight (V, D), idx (...)) -> (..., D); the gradient scatter-adds rows into (V, D).
//   gather(x, axis, idx): idx has x's rank and sizes except along `axis` (k there); out has idx's shape,
//   out[..., j, ...] = x[..., idx[..., j, ...], ...]; the gradient scatter-adds back into x's shape.
// Index values are range-checked by the kernels (RangeError naming the bad index).
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape, normAxis, sizeOf } from '../shape.js';
import { contiguous } from './shape.js';

/** Rows of `weight` (V, D) selected by int32 indices of any shape: out (...idx.shape, D). */
export function embedding(weight: Tensor, idx: Tensor): Tensor {
  check('embedding', ['embedding_forward', 'embedding_backward'], weight, idx);
  expectDtype('embedding', weight, 'float32', 'weight');
  expectDtype('embedding', idx, 'int32', 'indices');
  if (weight.rank !== 2) {
    throw new RangeError(`dd2: embedding: weight must be 2-D (vocab, dim), got ${fmtShape(weight.shape)}`);
  }
  const [V, D] = weight.shape;
  const n = idx.size;
  const wc = contiguous(weight), ic = contiguous(idx);
  const out = empty([...idx.shape, D], { device: weight.device });
  try {
    native.embedding_forward(out.id, wc.id, ic.id, n, D, V);
  } catch (e) {
    out.dispose();
    if (wc !== weight) wc.dispose();
    if (ic !== idx) ic.dispose();
    throw e;
  }
  if (wc !== weight) wc.dispose();
  record('embedding', [weight], out, (dy) => {
    const dyc = contiguous(dy);
    const dw = empty([V, D], { device: weight.device });
    native.embedding_backward(dw.id, dyc.id, ic.id, n, D, V);
    return [dw];
  });
  if (!out.node && ic !== idx) ic.dispose();
  return out;
}

/** Values of x picked along `axis` by int32 indices (torch.gather semantics, same-size other axes). */
export function gather(x: Tensor, axis: number, idx: Tensor): Tensor {
  check('gather', ['gather_forward', 'gather_backward'], x, idx);
  expectDtype('gather', x, 'float32', 'input');
  expectDtype('gather', idx, 'int32', 'indices');
  const a = normAxis(axis, x.rank, 'gather');
  if (idx.rank !== x.rank || !idx.shape.every((d, i) => i === a || d === x.shape[i])) {
    throw new RangeError(`dd2: gather: indices ${fmtShape(idx.shape)} must match input ${fmtShape(x.shape)} ` +
      `on every axis except ${a}`);
  }
  const outer = sizeOf(x.shape.slice(0, a)), n = x.shape[a], inner = sizeOf(x.shape.slice(a + 1));
  const k = idx.shape[a];
  const xc = contiguous(x), ic = contiguous(idx);
  const out = empty(idx.shape, { device: x.device });
  try {
    native.gather_forward(out.id, xc.id, ic.id, outer, n, inner, k);
  } catch (e) {
    out.dispose();
    if (xc !== x) xc.dispose();
    if (ic !== idx) ic.dispose();
    throw e;
  }
  if (xc !== x) xc.dispose();
  record('gather', [x], out, (dy) => {
    const dyc = contiguous(dy);
    const dx = empty(x.shape, { device: x.device });
    native.gather_backward(dx.id, dyc.id, ic.id, outer, n, inner, k);
    return [dx];
  });
  if (!out.node && ic !== idx) ic.dispose();
  return out;
}
