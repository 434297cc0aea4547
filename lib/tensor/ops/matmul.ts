// Matrix products with batch broadcasting and transpose flags, through the native GEMM.
//   matmul(a, b): a (..., M, K), b (..., K, N) -> (..., M, N); with transA a is (..., K, M), with
//   transB b is (..., N, K). A 2-D b against a batched a folds the batch into M (one large GEMM), the
//   shape of every linear layer. Transposed views are passed to GEMM as flags, not copied.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { broadcastShapes, fmtShape, sizeOf } from '../shape.js';
import { contiguous, expand, reshape, unsqueeze, squeeze } from './shape.js';
import { sumToShape } from './reduce.js';
import { add as addBias } from './elementwise.js';

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/** Returns [dense tensor, transposed?]: a dense tensor, or a tensor whose last two axes are a
 *  transposed dense matrix (read with the opposite transpose flag). */
function asGemmOperand(x: Tensor, trans: boolean): [Tensor, boolean] {
  if (x.isDense()) return [x, trans];
  const r = x.rank;
  if (r >= 2 && x.offset === 0) {
    const rows = x.shape[r - 2], cols = x.shape[r - 1];
    const st = x.strides;
    let ok = st[r - 2] === 1 && st[r - 1] === rows;
    let acc = rows * cols;
    for (let i = r - 3; i >= 0 && ok; i--) {
      if (x.shape[i] !== 1 && st[i] !== acc) ok = false;
      acc *= x.shape[i];
    }
    if (ok) {
      // Reinterpret the storage as the dense (..., cols, rows) matrix it is.
      const dims = [...x.shape.slice(0, -2), cols, rows];
      const t = new Tensor(x.storage, dims, x.dtype);
      return [t, !trans];
    }
  }
  return [contiguous(x), trans];
}

function batchStride(x: Tensor, outBatch: number[], mat: number): [Tensor, number] {
  const xb = x.shape.slice(0, -2);
  const nb = sizeOf(xb);
  if (nb === 1) return [x, 0];
  if (sizeOf(outBatch) === nb && xb.length <= outBatch.length) return [x, mat];
  // Partial broadcast of batch axes: materialise the expanded operand.
  const full = contiguous(expand(x, [...outBatch, ...x.shape.slice(-2)]));
  return [full, mat];
}

/** Raw product without autograd. */
function matmulRaw(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const [ad, ta] = asGemmOperand(a, transA);
  const [bd, tb] = asGemmOperand(b, transB);
  const M = ta ? ad.shape[ad.rank - 1] : ad.shape[ad.rank - 2];
  const K = ta ? ad.shape[ad.rank - 2] : ad.shape[ad.rank - 1];
  const Kb = tb ? bd.shape[bd.rank - 1] : bd.shape[bd.rank - 2];
  const N = tb ? bd.shape[bd.rank - 2] : bd.shape[bd.rank - 1];
  if (K !== Kb) {
    throw new RangeError(`dd2: matmul: inner dimensions differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} x ` +
      `${fmtShape(b.shape)}${transB ? 'ᵀ' : ''} (${K} vs ${Kb})`);
  }
  const outBatch = broadcastShapes(ad.shape.slice(0, -2), bd.shape.slice(0, -2), 'matmul');
  const [ab, sa] = batchStride(ad, outBatch, M * K);
  const [bb, sb] = batchStride(bd, outBatch, K * N);
  const out = empty([...outBatch, M, N], { device: a.device });
  native.gemm(out.id, ab.id, bb.id, sizeOf(outBatch), M, N, K, ta, tb, sa, sb, M * N, 1, 0);
  for (const t of [ad, bd, ab, bb]) if (t !== a && t !== b && !t.disposed) t.dispose();
  return out;
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  check('matmul', ['gemm'], a, b);
  expectDtype('matmul', a, 'float32', 'left operand');
  expectDtype('matmul', b, 'float32', 'right operand');
  const transA = !!opts.transA, transB = !!opts.transB;
  if (a.rank === 1) return squeeze(matmul(unsqueeze(a, transA ? 1 : 0), b, opts), -2);
  if (b.rank === 1) return squeeze(matmul(a, unsqueeze(b, transB ? 0 : 1), opts), -1);
  // Fold a's batch into M when b is a single matrix: (B..., M, K) x (K, N) is one (B·M, K) GEMM.
  if (b.rank === 2 && a.rank > 2 && !transA) {
    const K = a.shape[a.rank - 1];
    const a2 = reshape(a, [-1, K]);
    const y2 = matmul(a2, b, opts);
    const N = y2.shape[1];
    return reshape(y2, [...a.shape.slice(0, -1), N]);
  }
  const y = matmulRaw(a, b, transA, transB);
  return record('matmul', [a, b], y, (dy) => {
    let da: Tensor | null = null, db: Tensor | null = null;
    if (a.requiresGrad) {
      da = transA ? matmulRaw(b, dy, transB, true) : matmulRaw(dy, b, false, !transB);
      if (da.size !== a.size || da.rank !== a.rank) da = sumToShape(da, a.shape);
    }
    if (b.requiresGrad) {
      db = transB ? matmulRaw(dy, a, true, transA) : matmulRaw(a, dy, !transA, false);
      if (db.size !== b.size || db.rank !== b.rank) db = sumToShape(db, b.shape);
    }
    return [da, db];
  });
}

/** x (..., in) · W^T + b with W (out, in), b (out): PyTorch's Linear layout. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  const y = matmul(x, w, { transB: true });
  if (!b) return y;
  const out = addBias(y, b);
  if (!out.node) y.dispose();
  return out;
}

/** float32 matmul precision on CUDA: 'highest' (full float32, the default) or 'tf32' (tensor cores,
 *  10-bit mantissa inputs, float32 accumulation; about 7x faster on an H100). CPU GEMM is unaffected. */
export function setCudaMatmulPrecision(p: 'highest' | 'tf32'): void {
  if (p !== 'highest' && p !== 'tf32') throw new RangeError(`dd2: setCudaMatmulPrecision: expected 'highest' or 'tf32', got '${p}'`);
  native.gemm_cuda_options({ tf32: p === 'tf32' });
}
