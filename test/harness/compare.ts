// Shared comparison helpers for kernel tests: seeded float32 inputs, error metrics against float64
// references, and a tolerance rule that reports the numbers it judged.
import type { Test } from 'tap';

/** Deterministic generator (mulberry32) for test inputs; values are rounded to float32 so the
 *  float64 reference and the native kernel start from identical numbers. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.next();
    return a;
  }
  normal(n: number, std = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.max(this.next(), 1e-12), v = this.next();
      a[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
    return a;
  }
  ints(n: number, hi: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.floor(this.next() * hi);
    return a;
  }
}

export interface ErrorStats { maxAbs: number; maxRel: number; nmse: number; worst: number; count: number }

/** Error of `got` against `want`; maxRel uses |want| + atolFloor in the denominator. */
export function errorStats(got: ArrayLike<number>, want: ArrayLike<number>, atolFloor = 1e-30): ErrorStats {
  if (got.length !== want.length) throw new Error(`length mismatch: got ${got.length}, want ${want.length}`);
  let maxAbs = 0, maxRel = 0, se = 0, sw = 0, worst = -1;
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      const same = Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w));
      if (!same) { maxAbs = Infinity; maxRel = Infinity; worst = i; }
      continue;
    }
    const d = Math.abs(g - w);
    if (d > maxAbs) { maxAbs = d; worst = i; }
    maxRel = Math.max(maxRel, d / (Math.abs(w) + atolFloor));
    se += d * d; sw += w * w;
  }
  return { maxAbs, maxRel, nmse: sw > 0 ? se / sw : se, worst, count: got.length };
}

export interface Tolerance { atol?: number; rtol?: number }

/** Elementwise rule |got - want| <= atol + rtol * |want| (non-finite values must match exactly).
 *  Prints the measured errors so loosened tolerances can be justified from the log. */
export function expectClose(t: Test, name: string, got: ArrayLike<number>, want: ArrayLike<number>,
                            tol: Tolerance = {}): boolean {
  const atol = tol.atol ?? 1e-6, rtol = tol.rtol ?? 1e-5;
  if (got.length !== want.length) {
    t.fail(`${name}: length ${got.length} != ${want.length}`);
    return false;
  }
  let bad = -1, worstRatio = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      const same = Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w));
      if (!same && bad < 0) bad = i;
      continue;
    }
    const ratio = Math.abs(g - w) / (atol + rtol * Math.abs(w));
    if (ratio > worstRatio) worstRatio = ratio;
    if (ratio > 1 && bad < 0) bad = i;
  }
  const s = errorStats(got, want);
  const msg = `${name}: maxAbs=${s.maxAbs.toExponential(2)} maxRel=${s.maxRel.toExponential(2)} ` +
    `nmse=${s.nmse.toExponential(2)} worst/tol=${worstRatio.toFixed(3)} (atol=${atol}, rtol=${rtol}, n=${s.count})`;
  if (bad >= 0) t.fail(`${msg}; first failure at ${bad}: got ${got[bad]}, want ${want[bad]}`);
  else t.pass(msg);
  return bad < 0;
}

/** Scale-aware rule for reductions/GEMM-like outputs: max|got - want| <= tol * max(scale, tiny),
 *  where `scale` is a per-element magnitude bound (e.g. sum |a_ik b_kj| for a dot product). */
export function expectCloseScaled(t: Test, name: string, got: ArrayLike<number>, want: ArrayLike<number>,
                                  scale: ArrayLike<number>, tol: number): boolean {
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - want[i]) / Math.max(scale[i], 1e-30);
    if (Number.isNaN(r) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) { worst = Infinity; at = i; break; }
    if (r > worst) { worst = r; at = i; }
  }
  const ok = worst <= tol;
  const msg = `${name}: max |err|/scale = ${worst.toExponential(2)} (tol ${tol.toExponential(1)}, n=${got.length})`;
  if (ok) t.pass(msg); else t.fail(`${msg}; at ${at}: got ${got[at]}, want ${want[at]}`);
  return ok;
}

/** float32 unit roundoff */
export const EPS32 = 2 ** -24;
