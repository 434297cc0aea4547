// Float64 references for softmax, log-softmax and cross-entropy over the last axis of (rows, cols).
// Written the obvious way (max-shifted exponentials); cross-entropy is the composite
// -logSoftmax(logits)[target], independent of the fused kernel's lse formulation.

/** Row maximum; -inf for an empty or fully masked row. */
function rowMax(x: ArrayLike<number>, o: number, cols: number): number {
  let m = -Infinity;
  for (let j = 0; j < cols; j++) m = Math.max(m, x[o + j]);
  return m;
}

export function logSoftmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols, m = rowMax(x, o, cols);
    if (m === -Infinity) { y.fill(-Infinity, o, o + cols); continue; }   // fully masked row: -inf
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < cols; j++) y[o + j] = x[o + j] - lse;
  }
  return y;
}

export function softmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  return logSoftmaxRef(x, rows, cols).map(Math.exp);   // exp(-inf) = 0 for masked rows
}

/** softmax/logSoftmax along `axis` of a row-major tensor of `shape` (moves the axis last and back). */
export function alongAxisRef(f: (x: Float64Array, rows: number, cols: number) => Float64Array, x: Float64Array,
                             shape: number[], axis: number): Float64Array {
  const a = axis < 0 ? axis + shape.length : axis;
  const n = shape[a], inner = shape.slice(a + 1).reduce((p, v) => p * v, 1);
  const outer = shape.slice(0, a).reduce((p, v) => p * v, 1);
  const rows = outer * inner, tmp = new Float64Array(rows * n);
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) for (let k = 0; k < n; k++) {
    tmp[(o * inner + i) * n + k] = x[(o * n + k) * inner + i];
  }
  const t = f(tmp, rows, n), y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) for (let k = 0; k < n; k++) {
    y[(o * n + k) * inner + i] = t[(o * inner + i) * n + k];
  }
  return y;
}

/** Analytic gradients (for rows with -inf entries, where finite differences do not apply). */
export function softmaxBackwardRef(y: Float64Array, dy: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += dy[r * cols + j] * y[r * cols + j];
    for (let j = 0; j < cols; j++) dx[r * cols + j] = y[r * cols + j] * (dy[r * cols + j] - dot);
  }
  return dx;
}

export function logSoftmaxBackwardRef(y: Float64Array, dy: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    if (rowMax(y, r * cols, cols) === -Infinity) continue;   // fully masked row: zero gradient (our choice)
    let s = 0;
    for (let j = 0; j < cols; j++) s += dy[r * cols + j];
    for (let j = 0; j < cols; j++) dx[r * cols + j] = dy[r * cols + j] - Math.exp(y[r * cols + j]) * s;
  }
  return dx;
}

/** Per-row loss -logSoftmax(logits)[t] (0 for ignored rows), then the reduction. */
export function crossEntropyRef(logits: ArrayLike<number>, targets: ArrayLike<number>, rows: number, cols: number,
                                ignoreIndex: number, reduction: 'mean' | 'sum' | 'none'): Float64Array {
  const lsm = logSoftmaxRef(logits, rows, cols);
  const loss = new Float64Array(rows);
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    if (targets[r] === ignoreIndex) continue;
    kept++;
    loss[r] = -lsm[r * cols + targets[r]];
  }
  if (reduction === 'none') return loss;
  const total = loss.reduce((p, v) => p + v, 0);
  return Float64Array.of(reduction === 'sum' ? total : total / kept);
}
