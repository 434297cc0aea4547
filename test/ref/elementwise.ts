// Float64 references for elementwise ops and broadcasting.
import { broadcastShapes, contiguousStrides, sizeOf } from '../../lib/tensor/shape.js';

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for a reference; use the series/continued fraction pair.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 80; n++) {
      term *= -x * x / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for |x| >= 2.5
  let f = ax, C = ax, D = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    D = ax + an * D; D = 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

export const unaryRef: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  geluTanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  relu: (x) => (x > 0 ? x : 0),
  abs: Math.abs,
  square: (x) => x * x,
  rsqrt: (x) => 1 / Math.sqrt(x),
  sin: Math.sin,
  cos: Math.cos,
  reciprocal: (x) => 1 / x,
};

export const binaryRef: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: (a, b) => (a >= b ? a : b),
  minimum: (a, b) => (a <= b ? a : b),
  pow: (a, b) => a ** b,
};

/** Broadcasting binary op over row-major arrays. */
export function broadcastRef(f: (a: number, b: number) => number, a: Float64Array, as: number[], b: Float64Array,
                             bs: number[]): Float64Array {
  const shape = broadcastShapes(as, bs, 'ref');
  const n = sizeOf(shape), r = shape.length;
  const ast = contiguousStrides(as), bst = contiguousStrides(bs);
  const out = new Float64Array(n);
  const idx = new Array<number>(r).fill(0);
  for (let i = 0; i < n; i++) {
    let ia = 0, ib = 0;
    for (let d = 0; d < r; d++) {
      const da = d - (r - as.length), db = d - (r - bs.length);
      if (da >= 0 && as[da] !== 1) ia += idx[d] * ast[da];
      if (db >= 0 && bs[db] !== 1) ib += idx[d] * bst[db];
    }
    out[i] = f(a[ia], b[ib]);
    for (let d = r - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Reduction over one axis of a row-major array. */
export function reduceAxisRef(x: Float64Array, shape: number[], axis: number,
                              f: (vals: number[]) => number): Float64Array {
  const outer = sizeOf(shape.slice(0, axis)), n = shape[axis], inner = sizeOf(shape.slice(axis + 1));
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const vals: number[] = [];
      for (let j = 0; j < n; j++) vals.push(x[(o * n + j) * inner + i]);
      out[o * inner + i] = f(vals);
    }
  }
  return out;
}
