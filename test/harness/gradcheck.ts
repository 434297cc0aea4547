// The op-test harness: forward against a float64 reference, backward against central finite
// differences of that reference in float64, under a random upstream gradient w (L = sum(w * y)).
// Chain of trust: float64 reference forward -> finite differences -> native backward.
import type { Test } from 'tap';
import { Tensor } from '../../lib/tensor/tensor.js';
import { tensor } from '../../lib/tensor/create.js';
import { backward } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/engine.js';
import { expectClose, Rng, type Tolerance } from './compare.js';

export interface InputSpec {
  data: Float32Array | Int32Array;
  shape: number[];
  /** differentiate with respect to this input (float32 only); default true for float32 */
  grad?: boolean;
}

export interface OpCase {
  name: string;
  inputs: InputSpec[];
  /** the native op under test */
  run: (xs: Tensor[]) => Tensor;
  /** float64 reference over the inputs' values, returning the output in row-major order */
  ref: (xs: Float64Array[]) => Float64Array;
  forward?: Tolerance;
  /** gradient rule: |g - fd| <= atol + rtol * max|fd| over the checked coordinates */
  backward?: { atol?: number; rtol?: number } | false;
  /** coordinates checked per input (random subset); default 48 */
  coords?: number;
  seed?: number;
}

function toF64(a: Float32Array | Int32Array): Float64Array {
  return Float64Array.from(a);
}

/** Central difference of L(x) = sum(w * ref(x)) at coordinate j of input k, in float64. */
function fdAt(c: OpCase, xs: Float64Array[], w: Float64Array, k: number, j: number): number {
  const x0 = xs[k][j];
  const h = 1e-6 * Math.max(1, Math.abs(x0));
  const L = (): number => {
    const y = c.ref(xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  };
  xs[k][j] = x0 + h;
  const lp = L();
  xs[k][j] = x0 - h;
  const lm = L();
  xs[k][j] = x0;
  return (lp - lm) / (2 * h);
}

/** Runs forward and backward checks for one case; returns nothing, asserts through t. */
export function checkOp(t: Test, c: OpCase): void {
  try {
    checkOpOn(t, c);
  } catch (e) {
    // On a device that lacks one of the op's kernels (GPU runs of the suite), the case is skipped
    // with the reason instead of failing; on the CPU every kernel exists, so this never triggers.
    const msg = e instanceof Error ? e.message : String(e);
    if (/is not available on cuda/.test(msg)) t.pass(`${c.name}: SKIPPED on this device: ${msg}`, { skip: msg });
    else throw e;
  }
}

function checkOpOn(t: Test, c: OpCase): void {
  const rng = new Rng(c.seed ?? 1234);
  tidy(() => {
    const xs = c.inputs.map((s) => {
      const x = tensor(s.data, s.shape);
      if (x.dtype === 'float32' && s.grad !== false) x.requiresGrad = true;
      return x;
    });
    const y = c.run(xs);
    const ref64 = c.inputs.map((s) => toF64(s.data));
    const want = c.ref(ref64.map((a) => a.slice()));
    expectClose(t, `${c.name} forward`, y.toFloat32Array(), want, c.forward);
    if (c.backward === false) return;
    const w32 = rng.normal(y.size);
    backward(y, tensor(w32, [...y.shape]));
    const w = toF64(w32);
    xs.forEach((x, k) => {
      if (!x.requiresGrad) return;
      const g = x.grad ? x.grad.toFloat32Array() : new Float32Array(x.size);
      const n = Math.min(c.coords ?? 48, x.size);
      const picks = x.size <= n ? [...Array(x.size).keys()] : Array.from({ length: n }, () => Math.floor(rng.next() * x.size));
      const fd = new Float64Array(picks.length), got = new Float64Array(picks.length);
      picks.forEach((j, i) => {
        fd[i] = fdAt(c, ref64, w, k, j);
        got[i] = g[j];
      });
      let scale = 0;
      for (const v of fd) scale = Math.max(scale, Math.abs(v));
      // Default: float32 gradients measured at <= ~1e-6 of the gradient scale for elementwise ops; the
      // float64 central difference adds ~1e-9. 1e-5 leaves room for float32 accumulation.
      const bt = c.backward || {};
      const rtol = bt.rtol ?? 1e-5, atol = bt.atol ?? 1e-7;
      expectClose(t, `${c.name} d/dx${k} vs finite differences`, got, fd, { atol: atol + rtol * scale, rtol: 0 });
      x.grad?.dispose();
      x.grad = null;
    });
  });
}
