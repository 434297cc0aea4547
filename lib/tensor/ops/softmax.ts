// Softmax, log-softmax and fused cross-entropy. The kernels work on the last axis of a dense
// (rows, cols) matrix; softmax along another axis swaps that axis last and back (two copies).
// A row whose entries are all -inf gives softmax 0s and log-softmax -inf (not NaN), with zero gradient.
// Dimension letters: V classes (vocabulary) for cross-entropy; rows = the leading axes flattened.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape, normAxis, shapeEq, sizeOf } from '../shape.js';
import { contiguous, permute } from './shape.js';
import { sum } from './reduce.js';
import { cast, div, scalarOp } from './elementwise.js';

type Kind = 'softmax' | 'log_softmax';

/** One kernel call over the last axis; the backward rule needs only the output y. */
function lastAxis(x: Tensor, kind: Kind, op: string): Tensor {
  const fwd = kind === 'softmax' ? 'softmax_forward' : 'log_softmax_forward';
  const bwd = kind === 'softmax' ? 'softmax_backward' : 'log_softmax_backward';
  const cols = x.shape[x.rank - 1], rows = sizeOf(x.shape.slice(0, -1));
  const xc = contiguous(x);
  const y = empty(x.shape, { device: x.device });
  native[fwd](y.id, xc.id, rows, cols);
  if (xc !== x) xc.dispose();
  return record(op, [x], y, (dy) => {
    const dyc = contiguous(dy);
    const dx = empty(x.shape, { device: x.device });
    native[bwd](dx.id, dyc.id, y.id, rows, cols);
    return [dx];
  });
}

function alongAxis(x: Tensor, axis: number, kind: Kind): Tensor {
  const op = kind === 'softmax' ? 'softmax' : 'logSoftmax';
  check(op, [`${kind}_forward`, `${kind}_backward`], x);
  expectDtype(op, x, 'float32');
  const a = normAxis(axis, x.rank, op);
  const last = x.rank - 1;
  if (a === last) return lastAxis(x, kind, op);
  const perm = x.shape.map((_, i) => (i === a ? last : i === last ? a : i));   // a swap: its own inverse
  const xp = permute(x, perm);
  const yp = lastAxis(xp, kind, op);
  const back = permute(yp, perm);
  const out = contiguous(back);
  if (!out.node) for (const t of [xp, yp, back]) if (t !== out) t.dispose();
  return out;
}

/** exp(x) / sum(exp(x)) along `axis` (default the last), computed with the row maximum subtracted. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return alongAxis(x, axis, 'softmax');
}

/** x - logsumexp(x) along `axis` (default the last). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return alongAxis(x, axis, 'log_softmax');
}

export interface CrossEntropyOptions {
  /** targets equal to this contribute no loss and no gradient (default -100, as in PyTorch) */
  ignoreIndex?: number;
  /** 'mean' (default) averages over the non-ignored targets, 'sum' adds, 'none' keeps the targets' shape */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits (..., V) against int32 class indices (...), fused: loss = lse(logits) -
 * logits[target] per position, without materialising log-softmax. Gradient w.r.t. logits only.
 * Targets outside [0, V) (other than ignoreIndex) throw a RangeError. With 'mean' and every target
 * ignored the result is NaN (0 / 0), as in PyTorch.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  const ignoreIndex = opts.ignoreIndex ?? -100, reduction = opts.reduction ?? 'mean';
  check(op, ['cross_entropy_forward', 'cross_entropy_backward'], logits, targets);
  expectDtype(op, logits, 'float32', 'logits');
  expectDtype(op, targets, 'int32', 'targets');
  if (logits.rank < 1 || !shapeEq(targets.shape, logits.shape.slice(0, -1))) {
    throw new RangeError(`dd2: ${op}: targets ${fmtShape(targets.shape)} must have the shape of logits ` +
      `${fmtShape(logits.shape)} without its last (class) axis`);
  }
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none') {
    throw new RangeError(`dd2: ${op}: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  }
  if (!Number.isInteger(ignoreIndex)) throw new RangeError(`dd2: ${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  const V = logits.shape[logits.rank - 1], rows = targets.size;
  const lc = contiguous(logits), tc = contiguous(targets);
  const loss = empty(targets.shape, { device: logits.device });
  const lse = empty([rows], { device: logits.device });
  try {
    native.cross_entropy_forward(loss.id, lse.id, lc.id, tc.id, rows, V, ignoreIndex);
  } catch (e) {
    for (const t of [loss, lse, lc, tc]) if (t !== logits && t !== targets) t.dispose();
    throw e;
  }
  record(op, [logits], loss, (dy) => {
    const dyc = contiguous(dy);
    const dl = empty(logits.shape, { device: logits.device });
    native.cross_entropy_backward(dl.id, dyc.id, lc.id, lse.id, tc.id, rows, V, ignoreIndex);
    return [dl];
  });
  let out = loss;
  const temps: Tensor[] = [lse];
  if (lc !== logits) temps.push(lc);
  if (tc !== targets) temps.push(tc);
  if (reduction !== 'none') {
    temps.push(loss);
    out = sum(loss);
    if (reduction === 'mean') {
      const total = out, count = countKept(tc, ignoreIndex);
      out = div(total, count);
      temps.push(total, count);
    }
  }
  if (!out.node) for (const t of temps) t.dispose();
  return out;
}

/** Number of targets not equal to ignoreIndex, as a float32 scalar tensor (no host round trip). */
function countKept(targets: Tensor, ignoreIndex: number): Tensor {
  const f = cast(targets, 'float32');
  const ignored = scalarOp(f, ignoreIndex, 'eq');
  const kept = scalarOp(ignored, 1, 'rsub');
  const n = sum(kept);
  for (const t of [f, ignored, kept]) t.dispose();
  return n;
}
