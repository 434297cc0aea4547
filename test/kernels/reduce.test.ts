// Reductions (sum, mean, max, min, logsumexp over one or several axes, keepDims) and layout ops
// (reshape, permute, transpose, slice, expand, concat, stack): forward against float64 references and
// backward against finite differences, including gradients flowing through a chain of them.
import t from 'tap';
import { sum, mean, max, min, logsumexp, argmax } from '../../lib/tensor/ops/reduce.js';
import { reshape, permute, transpose, slice, expand, concat, stack, contiguous } from '../../lib/tensor/ops/shape.js';
import { square } from '../../lib/tensor/ops/elementwise.js';
import { tensor } from '../../lib/tensor/create.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { checkOp } from '../harness/gradcheck.js';
import { Rng } from '../harness/compare.js';
import { reduceAxisRef } from '../ref/elementwise.js';
import { contiguousStrides, sizeOf } from '../../lib/tensor/shape.js';

const rng = new Rng(5);
const before = memory();

/** Reduces several axes in turn with f (float64). */
function reduceRef(x: Float64Array, shape: number[], axes: number[], f: (v: number[]) => number): Float64Array {
  let cur = x, s = [...shape];
  for (const a of [...axes].sort((p, q) => q - p)) {
    cur = reduceAxisRef(cur, s, a, f);
    s = s.filter((_, i) => i !== a);
  }
  return cur;
}
const fsum = (v: number[]): number => v.reduce((p, q) => p + q, 0);
const fmax = (v: number[]): number => Math.max(...v);
const fmin = (v: number[]): number => Math.min(...v);
const flse = (v: number[]): number => { const m = fmax(v); return m + Math.log(fsum(v.map((u) => Math.exp(u - m)))); };

// Sums accumulate in double and round once: forward error <= 0.5 ulp of the result (measured 6e-8 rel).
const cases: [number[], number[]][] = [[[7], [0]], [[3, 5], [1]], [[3, 5], [0]], [[2, 3, 33], [1]], [[2, 3, 4], [0, 2]], [[4, 1, 6], [0, 1, 2]]];
t.test('sum / mean / max / min / logsumexp', async (t) => {
  for (const [shape, axes] of cases) {
    const n = sizeOf(shape);
    const data = rng.uniform(n, -3, 3);
    const tag = `${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`;
    checkOp(t, { name: `sum ${tag}`, inputs: [{ data, shape }], run: ([x]) => sum(x, axes), ref: ([x]) => reduceRef(x, shape, axes, fsum), forward: { rtol: 1e-7, atol: 1e-7 } });
    const cnt = axes.reduce((p, a) => p * shape[a], 1);
    checkOp(t, { name: `mean ${tag}`, inputs: [{ data, shape }], run: ([x]) => mean(x, axes), ref: ([x]) => reduceRef(x, shape, axes, fsum).map((v) => v / cnt), forward: { rtol: 2e-7, atol: 1e-7 } });
    checkOp(t, { name: `max ${tag}`, inputs: [{ data, shape }], run: ([x]) => max(x, axes), ref: ([x]) => reduceRef(x, shape, axes, fmax), forward: { rtol: 0, atol: 0 } });
    checkOp(t, { name: `min ${tag}`, inputs: [{ data, shape }], run: ([x]) => min(x, axes), ref: ([x]) => reduceRef(x, shape, axes, fmin), forward: { rtol: 0, atol: 0 } });
    if (axes.length === 1) {
      checkOp(t, { name: `logsumexp ${tag}`, inputs: [{ data, shape }], run: ([x]) => logsumexp(x, axes[0]), ref: ([x]) => reduceRef(x, shape, axes, flse), forward: { rtol: 2e-7, atol: 1e-7 } });
    }
  }
});

t.test('keepDims shapes, argmax, and gradients through mean of a chain', async (t) => {
  tidy(() => {
    const x = tensor(rng.uniform(24), [2, 3, 4]);
    t.same(sum(x, [1], true).shape, [2, 1, 4]);
    t.same(mean(x, [0, 2], true).shape, [1, 3, 1]);
    t.same(sum(x).shape, []);
    t.same(Array.from(argmax(tensor([1, 5, 2, 7, 7, 0], [2, 3]), 1).toInt32Array()), [1, 0], 'argmax, first index on ties');
    t.throws(() => max(tensor(new Float32Array(0), [2, 0]), 1), /empty/);
  });
  // mean must keep the graph alive (regression: it once disposed its recorded input).
  checkOp(t, { name: 'mean(square(x))', inputs: [{ data: rng.uniform(12), shape: [3, 4] }], run: ([x]) => mean(square(x)),
    ref: ([x]) => Float64Array.of(x.reduce((p, v) => p + v * v, 0) / 12) });
});

/** Row-major gather of a permutation of axes (float64 reference for permute). */
function permuteRef(x: Float64Array, shape: number[], dims: number[]): Float64Array {
  const out = new Float64Array(x.length), st = contiguousStrides(shape);
  const oshape = dims.map((d) => shape[d]);
  const ost = contiguousStrides(oshape);
  for (let i = 0; i < x.length; i++) {
    let src = 0;
    for (let k = 0; k < dims.length; k++) src += (Math.floor(i / ost[k]) % oshape[k]) * st[dims[k]];
    out[i] = x[src];
  }
  return out;
}

t.test('layout ops and their gradients', async (t) => {
  const data = rng.uniform(60);
  const shape = [3, 4, 5];
  checkOp(t, { name: 'reshape', inputs: [{ data, shape }], run: ([x]) => reshape(x, [12, -1]), ref: ([x]) => x.slice(), forward: { rtol: 0, atol: 0 } });
  checkOp(t, { name: 'permute [2,0,1]', inputs: [{ data, shape }], run: ([x]) => permute(x, [2, 0, 1]), ref: ([x]) => permuteRef(x, shape, [2, 0, 1]), forward: { rtol: 0, atol: 0 } });
  checkOp(t, { name: 'transpose then reshape (copy of a view)', inputs: [{ data, shape }], run: ([x]) => reshape(transpose(x, 0, 2), [-1]), ref: ([x]) => permuteRef(x, shape, [2, 1, 0]), forward: { rtol: 0, atol: 0 } });
  checkOp(t, { name: 'slice axis 1 [1,3)', inputs: [{ data, shape }], run: ([x]) => contiguous(slice(x, 1, 1, 3)),
    ref: ([x]) => Float64Array.from({ length: 30 }, (_, i) => { const a = Math.floor(i / 10), b = Math.floor(i / 5) % 2, c = i % 5; return x[a * 20 + (b + 1) * 5 + c]; }), forward: { rtol: 0, atol: 0 } });
  checkOp(t, { name: 'expand [1,5] -> [4,5]', inputs: [{ data: data.subarray(0, 5), shape: [1, 5] }], run: ([x]) => contiguous(expand(x, [4, 5])),
    ref: ([x]) => Float64Array.from({ length: 20 }, (_, i) => x[i % 5]), forward: { rtol: 0, atol: 0 } });
  checkOp(t, { name: 'concat axis 1', inputs: [{ data: data.subarray(0, 6), shape: [2, 3] }, { data: data.subarray(6, 10), shape: [2, 2] }],
    run: ([a, b]) => concat([a, b], 1), ref: ([a, b]) => Float64Array.from([a[0], a[1], a[2], b[0], b[1], a[3], a[4], a[5], b[2], b[3]]), forward: { rtol: 0, atol: 0 } });
  checkOp(t, { name: 'stack axis 0', inputs: [{ data: data.subarray(0, 3), shape: [3] }, { data: data.subarray(3, 6), shape: [3] }],
    run: ([a, b]) => stack([a, b], 0), ref: ([a, b]) => Float64Array.from([...a, ...b]), forward: { rtol: 0, atol: 0 } });
  tidy(() => {
    t.throws(() => reshape(tensor(data, shape), [7, -1]), /cannot reshape \[3, 4, 5\]/);
    t.throws(() => permute(tensor(data, shape), [0, 0, 1]), /not a permutation/);
    t.throws(() => concat([tensor(data.subarray(0, 6), [2, 3]), tensor(data.subarray(0, 6), [3, 2])], 1), /does not match/);
  });
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
  t.equal(memory().cuda.bytes, before.cuda.bytes);
});
