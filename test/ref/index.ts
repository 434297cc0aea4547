// Float64 references for the indexing ops: embedding lookup and gather along an axis.
import { sizeOf } from '../../lib/tensor/shape.js';

/** out (n, D) = weight[idx[i]] for weight (V, D) given row-major; idx holds integer values. */
export function embeddingRef(weight: Float64Array, idx: ArrayLike<number>, D: number): Float64Array {
  const out = new Float64Array(idx.length * D);
  for (let i = 0; i < idx.length; i++) {
    for (let d = 0; d < D; d++) out[i * D + d] = weight[idx[i] * D + d];
  }
  return out;
}

/** out[.., j, ..] = x[.., idx[.., j, ..], ..] along `axis`; idx has x's sizes except along axis. */
export function gatherRef(x: Float64Array, xShape: number[], axis: number, idx: ArrayLike<number>,
                          idxShape: number[]): Float64Array {
  const outer = sizeOf(xShape.slice(0, axis)), inner = sizeOf(xShape.slice(axis + 1));
  const n = xShape[axis], k = idxShape[axis];
  const out = new Float64Array(idx.length);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * k + j) * inner + i;
        out[p] = x[(o * n + idx[p]) * inner + i];
      }
    }
  }
  return out;
}
