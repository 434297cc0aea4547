// matmul op: batch broadcasting, transpose flags, transposed views, the folded linear path, and
// gradients against finite differences. (Raw GEMM kernel cases are in gemm.test.ts.)
import t from 'tap';
import { matmul, linear } from '../../lib/tensor/ops/matmul.js';
import { transpose } from '../../lib/tensor/ops/shape.js';
import { memory } from '../../lib/tensor/engine.js';
import { checkOp } from '../harness/gradcheck.js';
import { Rng } from '../harness/compare.js';
import { matmulRef } from '../ref/matmul.js';
import { broadcastRef } from '../ref/elementwise.js';

const rng = new Rng(11);
const before = memory();
const n = (s: number[]): number => s.reduce((p, v) => p * v, 1);

// Forward: GEMM accumulates K float32 products; measured relative error <= ~3e-7 for K <= 33 here.
// rtol 2e-6 with atol 1e-6 (outputs are O(1) sums of O(1) terms) bounds that with margin.
const cases: [number[], number[], boolean, boolean][] = [
  [[3, 4], [4, 5], false, false], [[7, 33], [33, 1], false, false], [[1, 1], [1, 1], false, false],
  [[5, 3], [5, 4], true, false], [[3, 5], [4, 5], false, true], [[6, 2], [9, 6], true, true],
  [[2, 3, 4], [2, 4, 5], false, false], [[2, 3, 4], [4, 5], false, false], [[3, 4], [2, 4, 5], false, false],
  [[2, 1, 3, 4], [1, 3, 4, 2], false, false], [[2, 4, 3], [2, 5, 4], true, true], [[4, 7, 6], [5, 6], false, true],
];

t.test('matmul forward and backward', async (t) => {
  for (const [as, bs, ta, tb] of cases) {
    checkOp(t, {
      name: `matmul ${JSON.stringify(as)}${ta ? 'ᵀ' : ''} x ${JSON.stringify(bs)}${tb ? 'ᵀ' : ''}`,
      inputs: [{ data: rng.uniform(n(as)), shape: as }, { data: rng.uniform(n(bs)), shape: bs }],
      run: ([a, b]) => matmul(a, b, { transA: ta, transB: tb }),
      ref: ([a, b]) => matmulRef(a, as, b, bs, ta, tb).out,
      forward: { rtol: 2e-6, atol: 1e-6 },
    });
  }
});

t.test('transposed views are read without copying and give the same result', async (t) => {
  checkOp(t, {
    name: 'matmul(transpose(a), b)',
    inputs: [{ data: rng.uniform(12), shape: [4, 3] }, { data: rng.uniform(20), shape: [4, 5] }],
    run: ([a, b]) => matmul(transpose(a), b),
    ref: ([a, b]) => matmulRef(a, [4, 3], b, [4, 5], true, false).out,
    forward: { rtol: 2e-6, atol: 1e-6 },
  });
});

t.test('linear = x Wᵀ + b', async (t) => {
  checkOp(t, {
    name: 'linear (2,3,8)->(2,3,5)',
    inputs: [{ data: rng.uniform(48), shape: [2, 3, 8] }, { data: rng.uniform(40), shape: [5, 8] },
      { data: rng.uniform(5), shape: [5] }],
    run: ([x, w, b]) => linear(x, w, b),
    ref: ([x, w, b]) => broadcastRef((u, v) => u + v, matmulRef(x, [6, 8], w, [5, 8], false, true).out, [6, 5], b, [5]),
    forward: { rtol: 2e-6, atol: 1e-6 },
  });
});

t.test('inner-dimension mismatch names both shapes', async (t) => {
  const { tensor } = await import('../../lib/tensor/create.js');
  const a = tensor(new Float32Array(6), [2, 3]), b = tensor(new Float32Array(8), [4, 2]);
  t.throws(() => matmul(a, b), /inner dimensions differ: \[2, 3\] x \[4, 2\]/);
  a.dispose(); b.dispose();
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
});
