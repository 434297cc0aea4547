// Indexing ops: embedding and gather, forward against float64 references, backward against finite
// differences; exact scatter-add accumulation with repeated indices (integer-valued gradients make
// every float32 sum exact, so any lost or doubled update shows), determinism, range and shape errors.
import t from 'tap';
import { embedding, gather } from '../../lib/tensor/ops/index.js';
import { getDefaultDevice, tensor } from '../../lib/tensor/create.js';
import { supports } from '../../lib/tensor/kernel.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { backward } from '../../lib/autograd/tape.js';
import { checkOp } from '../harness/gradcheck.js';
import { Rng } from '../harness/compare.js';
import { embeddingRef, gatherRef } from '../ref/index.js';

const rng = new Rng(21);
const before = memory();
// Tests outside checkOp (which skips by itself) are skipped where the default device lacks the kernels.
const skip = supports('embedding_forward', getDefaultDevice()) ? false : `indexing kernels are not available on ${getDefaultDevice()}`;
const size = (s: number[]): number => s.reduce((p, v) => p * v, 1);

// Forward is a copy: exact (atol = rtol = 0). Backward: the gradient is a float32 sum of upstream
// values (normals) over repeated indices, up to ~25 terms here; measured |err| <= 7e-8 of the gradient
// scale (float32 rounding of the sums; the float64 finite difference adds ~1e-10), so rtol 5e-7.
const exact = { atol: 0, rtol: 0 };
const gradTol = { rtol: 5e-7, atol: 1e-9 };

t.test('embedding forward and backward (vocab 1, 7, 64; repeated indices)', async (t) => {
  const cases: [number, number, number[]][] = [
    [1, 5, [4]], [1, 1, [2, 3]], [7, 3, [12]], [7, 33, [2, 9]], [64, 16, [3, 5, 4]], [64, 1, [70]],
  ];
  for (const [V, D, ishape] of cases) {
    const idx = rng.ints(size(ishape), V);
    checkOp(t, {
      name: `embedding V=${V} D=${D} idx ${JSON.stringify(ishape)}`,
      inputs: [{ data: rng.uniform(V * D), shape: [V, D] }, { data: idx, shape: ishape }],
      run: ([w, i]) => embedding(w, i),
      ref: ([w, i]) => embeddingRef(w, i, D),
      forward: exact,
      backward: gradTol,
    });
  }
});

/** Backward with an integer-valued upstream gradient; returns the input's gradient values. */
function gradOf(run: (x: ReturnType<typeof tensor>) => ReturnType<typeof tensor>, x0: Float32Array, xshape: number[],
                dy: Float32Array): Float32Array {
  return tidy(() => {
    const x = tensor(x0, xshape);
    x.requiresGrad = true;
    const y = run(x);
    backward(y, tensor(dy, [...y.shape]));
    const g = x.grad!.toFloat32Array();
    x.grad!.dispose();
    return g;
  });
}

const intGrad = (n: number): Float32Array => Float32Array.from(rng.ints(n, 17), (v) => v - 8);

t.test('embedding gradient: scatter-add is exact and deterministic', { skip }, async (t) => {
  // V = 64, D = 300: several vocabulary ranges and two column blocks, above the parallel threshold.
  for (const [V, D, n] of [[64, 300, 500], [3, 33, 200], [1, 7, 50]]) {
    const idx = rng.ints(n, V);
    const dy = intGrad(n * D);
    const want = new Float32Array(V * D);
    for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) want[idx[i] * D + d] += dy[i * D + d];
    const run = (w: ReturnType<typeof tensor>) => embedding(w, tensor(idx, [n]));
    const got = gradOf(run, rng.uniform(V * D), [V, D], dy);
    t.same(Array.from(got), Array.from(want), `embedding V=${V} D=${D} n=${n}: exact integer scatter-add`);
    const fdy = rng.normal(n * D);
    const w0 = rng.uniform(V * D);
    const a = gradOf(run, w0, [V, D], fdy), b = gradOf(run, w0, [V, D], fdy);
    t.ok(a.every((v, i) => Object.is(v, b[i])), `embedding V=${V} D=${D}: two backward runs are bitwise equal`);
  }
});

t.test('embedding rejects out-of-range indices and wrong dtypes', { skip }, async (t) => {
  tidy(() => {
    const w = tensor(rng.uniform(14), [7, 2]);
    t.throws(() => embedding(w, tensor(new Int32Array([0, 6, 7, 1]), [4])),
      new RangeError('dd2: embedding_forward: index 7 at position 2 is out of range [0, 7)'));
    t.throws(() => embedding(w, tensor(new Int32Array([-1]), [1])), { name: 'RangeError', message: /index -1 at position 0/ });
    t.throws(() => embedding(w, tensor([0, 1], [2])), { name: 'TypeError', message: /embedding: indices must be int32/ });
    t.throws(() => embedding(tensor(rng.uniform(7), [7]), tensor(new Int32Array([0]), [1])),
      { name: 'RangeError', message: /weight must be 2-D \(vocab, dim\), got \[7\]/ });
  });
});

t.test('gather along first, middle and last axes (repeated indices)', async (t) => {
  // [x shape, axis, k]: k > n forces repeated indices, k < n skips rows.
  const cases: [number[], number, number][] = [
    [[5, 4, 3], 0, 7], [[5, 4, 3], 1, 9], [[5, 4, 3], 2, 2], [[5, 4, 3], -1, 6], [[6, 7], 0, 3], [[6, 7], 1, 15],
    [[1, 1], 0, 4], [[9], 0, 20], [[2, 1, 33], 1, 5],
  ];
  for (const [xs, axis, k] of cases) {
    const a = axis < 0 ? axis + xs.length : axis;
    const is = xs.map((d, i) => (i === a ? k : d));
    checkOp(t, {
      name: `gather x ${JSON.stringify(xs)} axis ${axis} k=${k}`,
      inputs: [{ data: rng.uniform(size(xs)), shape: xs }, { data: rng.ints(size(is), xs[a]), shape: is }],
      run: ([x, i]) => gather(x, axis, i),
      ref: ([x, i]) => gatherRef(x, xs, a, i, is),
      forward: exact,
      backward: gradTol,
    });
  }
});

t.test('gather gradient: scatter-add is exact and deterministic', { skip }, async (t) => {
  // x (40, 1000) along axis 0 (outer 1, four column blocks, parallel) and (30, 5, 8) along the last axis;
  // (3, 50) and (2, 40, 3) with k = 600 / 300: long index axes over few columns, which the CUDA kernel
  // sums through a sorted index list instead of one thread per column.
  const gcases: [number[], number, number][] = [[[40, 1000], 0, 30], [[30, 5, 8], 2, 20], [[3, 50], 1, 600],
    [[2, 40, 3], 1, 300]];
  for (const [xs, a, k] of gcases) {
    const is = xs.map((d, i) => (i === a ? k : d));
    const idx = rng.ints(size(is), xs[a]);
    const dy = intGrad(size(is));
    const outer = size(xs.slice(0, a)), n = xs[a], inner = size(xs.slice(a + 1));
    const want = new Float32Array(size(xs));
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < k; j++) {
        for (let i = 0; i < inner; i++) {
          const p = (o * k + j) * inner + i;
          want[(o * n + idx[p]) * inner + i] += dy[p];
        }
      }
    }
    const run = (x: ReturnType<typeof tensor>) => gather(x, a, tensor(idx, is));
    const got = gradOf(run, rng.uniform(size(xs)), xs, dy);
    t.same(Array.from(got), Array.from(want), `gather ${JSON.stringify(xs)} axis ${a}: exact integer scatter-add`);
    const fdy = rng.normal(size(is));
    const x0 = rng.uniform(size(xs));
    const g1 = gradOf(run, x0, xs, fdy), g2 = gradOf(run, x0, xs, fdy);
    t.ok(g1.every((v, i) => Object.is(v, g2[i])), `gather ${JSON.stringify(xs)}: two backward runs are bitwise equal`);
  }
});

t.test('gather rejects bad indices and shapes', { skip }, async (t) => {
  tidy(() => {
    const x = tensor(rng.uniform(12), [3, 4]);
    t.throws(() => gather(x, 1, tensor(new Int32Array([0, 1, 4, 2, 0, 0]), [3, 2])),
      new RangeError('dd2: gather_forward: index 4 at position 2 is out of range [0, 4)'));
    t.throws(() => gather(x, 0, tensor(new Int32Array([0, 1, 4, 2]), [1, 4])), /index 4 at position 2 is out of range \[0, 3\)/);
    t.throws(() => gather(x, 1, tensor(new Int32Array(6), [2, 3])),
      { name: 'RangeError', message: /gather: indices \[2, 3\] must match input \[3, 4\] on every axis except 1/ });
    t.throws(() => gather(x, 0, tensor(new Int32Array(4), [4])), /must match input \[3, 4\]/);
    t.throws(() => gather(x, 2, tensor(new Int32Array(4), [1, 4])), RangeError);
    t.throws(() => gather(x, 0, tensor([0, 0, 0, 0], [1, 4])), { name: 'TypeError', message: /indices must be int32/ });
  });
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
});
