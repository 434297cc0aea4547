// Elementwise ops: forward against float64 references, backward against finite differences, with
// broadcasting, non-block-multiple sizes, extreme values and NaN/inf propagation.
import t from 'tap';
import * as E from '../../lib/tensor/ops/elementwise.js';
import { tensor } from '../../lib/tensor/create.js';
import { tidy, memory } from '../../lib/tensor/engine.js';
import { checkOp } from '../harness/gradcheck.js';
import { expectClose, Rng } from '../harness/compare.js';
import { binaryRef, broadcastRef, unaryRef } from '../ref/elementwise.js';
import type { UnaryName, BinaryName } from '../../lib/tensor/native.js';

const rng = new Rng(7);
const before = memory();

// Domains keep inputs away from kinks (relu/abs at 0) and poles (log, sqrt, reciprocal near 0).
const domains: Record<UnaryName, [number, number]> = {
  neg: [-3, 3], exp: [-5, 5], log: [0.2, 5], sqrt: [0.2, 5], tanh: [-4, 4], sigmoid: [-6, 6], silu: [-6, 6],
  gelu: [-5, 5], geluTanh: [-5, 5], relu: [0.1, 3], abs: [0.1, 3], square: [-3, 3], rsqrt: [0.2, 5],
  sin: [-4, 4], cos: [-4, 4], reciprocal: [0.3, 4],
};

// Forward tolerance: a correctly rounded result is within 0.5 ulp (6e-8 relative); libm exp/tanh/erf
// in float32 measured up to ~2.4e-7 relative (about 2 ulp) here, so rtol = 1e-6 leaves 4x margin.
t.test('unary forward and backward', async (t) => {
  for (const op of Object.keys(domains) as UnaryName[]) {
    for (const n of [1, 7, 1000]) {
      const [lo, hi] = domains[op];
      checkOp(t, {
        name: `${op} n=${n}`,
        inputs: [{ data: rng.uniform(n, lo, hi), shape: [n] }],
        run: ([x]) => E.unary(x, op),
        ref: ([x]) => x.map(unaryRef[op]),
        forward: { rtol: 1e-6, atol: 1e-7 },
      });
    }
  }
});

t.test('unary extremes: large magnitudes saturate without NaN', async (t) => {
  tidy(() => {
    const xs = new Float32Array([-400, -90, -30, 30, 90, 400]);
    for (const op of ['sigmoid', 'tanh', 'silu', 'gelu', 'geluTanh'] as UnaryName[]) {
      const y = E.unary(tensor(xs), op).toFloat32Array();
      const want = Array.from(xs, (v) => unaryRef[op](v));
      expectClose(t, `${op} extremes`, y, want, { rtol: 1e-6, atol: 1e-30 });
    }
    const special = tensor(new Float32Array([NaN, Infinity, -Infinity, 0]));
    expectClose(t, 'exp propagates NaN/inf', E.exp(special).toFloat32Array(), [NaN, Infinity, 0, 1]);
    expectClose(t, 'log of 0 and -1', E.log(tensor([0, -1])).toFloat32Array(), [-Infinity, NaN]);
  });
});

const bshapes: [number[], number[]][] = [
  [[7], [7]], [[3, 5], [5]], [[3, 5], [3, 1]], [[1, 5], [4, 1]], [[2, 3, 4], [1, 3, 1]], [[33], []],
  [[2, 1, 9], [2, 5, 1]],
];
t.test('binary forward and backward with broadcasting', async (t) => {
  for (const op of Object.keys(binaryRef) as BinaryName[]) {
    for (const [as, bs] of bshapes) {
      const na = as.reduce((p, v) => p * v, 1), nb = bs.reduce((p, v) => p * v, 1);
      const lo = op === 'pow' || op === 'div' ? 0.5 : -2;
      checkOp(t, {
        name: `${op} ${JSON.stringify(as)} x ${JSON.stringify(bs)}`,
        inputs: [{ data: rng.uniform(na, lo, 2), shape: as }, { data: rng.uniform(nb, op === 'div' ? 0.5 : lo, 2), shape: bs }],
        run: ([a, b]) => E.binary(a, b, op),
        ref: ([a, b]) => broadcastRef(binaryRef[op], a, as, b, bs),
        forward: { rtol: op === 'pow' ? 1e-6 : 6e-8, atol: 1e-30 },
      });
    }
  }
});

t.test('scalar ops', async (t) => {
  const x = rng.uniform(33, 0.5, 3);
  const cases: [Parameters<typeof E.scalarOp>[2], number, (v: number) => number][] = [
    ['add', 1.5, (v) => v + 1.5], ['mul', -2.5, (v) => v * -2.5], ['pow', 3, (v) => v ** 3],
    ['pow', 0.5, Math.sqrt], ['rsub', 1, (v) => 1 - v], ['rdiv', 2, (v) => 2 / v],
  ];
  for (const [op, s, f] of cases) {
    checkOp(t, {
      name: `${op}Scalar(${s})`,
      inputs: [{ data: x, shape: [33] }],
      run: ([a]) => E.scalarOp(a, s, op),
      ref: ([a]) => a.map(f),
      forward: { rtol: 1e-6, atol: 1e-30 },
    });
  }
  tidy(() => {
    const y = E.scalarOp(tensor([1, 2, 3]), 2, 'ge').toFloat32Array();
    t.same(Array.from(y), [0, 1, 1], 'ge gives 0/1');
    t.same(Array.from(E.cast(tensor([1.7, -1.7, 3]), 'int32').toInt32Array()), [1, -1, 3], 'cast truncates');
  });
});

t.test('the harness rejects a wrong gradient', async (t) => {
  // A deliberately wrong reference (derivative off by 1%) must fail the backward comparison.
  let failed = 0;
  const fake = { ...t, pass: () => {}, fail: () => { failed++; } } as unknown as typeof t;
  checkOp(fake, {
    name: 'wrong', inputs: [{ data: rng.uniform(16, -1, 1), shape: [16] }],
    run: ([x]) => E.unary(x, 'square'), ref: ([x]) => x.map((v) => 1.01 * v * v),
  });
  t.ok(failed >= 1, `the 1% perturbed reference is rejected (${failed} failing assertions)`);
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, before.cpu.bytes, 'native bytes back to baseline');
});
