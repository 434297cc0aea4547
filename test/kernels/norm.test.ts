// layerNorm / rmsNorm / groupNorm: forward against float64 references, gradients for x, weight and bias
// against finite differences (checkOp, random upstream gradient), with and without affine parameters,
// a large common offset (1000 + N(0,1)), group counts 1, 2, C and spatial sizes 1, 9, 50.
import t from 'tap';
import { layerNorm, rmsNorm, groupNorm } from '../../lib/tensor/ops/norm.js';
import { tensor } from '../../lib/tensor/create.js';
import { memory } from '../../lib/tensor/engine.js';
import { checkOp, type InputSpec } from '../harness/gradcheck.js';
import { Rng, type Tolerance } from '../harness/compare.js';
import { groupNormRef, layerNormRef, rmsNormRef } from '../ref/norm.js';

const rng = new Rng(31);
const before = memory();
const size = (s: number[]): number => s.reduce((p, v) => p * v, 1);

// TOLERANCES (measured maxima in the test log, then a margin of a few times):
// forward: statistics in double, one rounding of xhat then a float multiply-add: measured maxRel
//   <= 2e-7 (atol covers outputs near 0, whose error is set by the rounding of w * xhat ~ 1e-7).
// backward: measured <= 1.9e-7 of the gradient scale (rmsNorm [64,300]); 1e-6.
const FWD: Tolerance = { rtol: 6e-7, atol: 3e-7 };
const BWD = { rtol: 1e-6, atol: 1e-9 };
// Blocks of 1 or 2 values are degenerate: y = ±d/sqrt(d² + eps) is nearly constant and its gradient,
// rstd·g·eps/(d² + eps), is what is left after cancelling 1 - xhat². Computed from the float32 rstd,
// the absolute error is ~rstd·|g|·1.2e-7 (measured <= 2.5e-7) while the value itself may be ~1e-6, so
// these cases are judged by an absolute tolerance. (PyTorch saves a float32 rstd and behaves the same.)
const bwdFor = (blockSize: number): typeof BWD => (blockSize <= 2 ? { rtol: 1e-6, atol: 1e-6 } : BWD);

type Affine = 'none' | 'w' | 'wb';
function params(C: number, affine: Affine, grad = true): InputSpec[] {
  const p: InputSpec[] = [];
  if (affine !== 'none') p.push({ data: rng.uniform(C, 0.5, 1.5), shape: [C], grad });
  if (affine === 'wb') p.push({ data: rng.uniform(C, -1, 1), shape: [C], grad });
  return p;
}

t.test('layerNorm over the last axis', async (t) => {
  const shapes = [[1, 1], [3, 7], [5, 33], [2, 1000], [4, 3, 17], [64, 300]];
  for (const shape of shapes) {
    const C = shape[shape.length - 1];
    for (const affine of ['none', 'w', 'wb'] as Affine[]) {
      checkOp(t, {
        name: `layerNorm ${JSON.stringify(shape)} affine=${affine}`,
        inputs: [{ data: rng.normal(size(shape), 2), shape }, ...params(C, affine)],
        run: ([x, w, b]) => layerNorm(x, w, b),
        ref: ([x, w, b]) => layerNormRef(x, C, w ?? null, b ?? null, 1e-5),
        forward: FWD, backward: bwdFor(C),
      });
    }
  }
});

t.test('layerNorm with a large common offset (1000 + N(0,1)) keeps full accuracy', async (t) => {
  for (const shape of [[4, 64], [3, 1000]]) {
    const x = rng.normal(size(shape)).map((v) => 1000 + v);
    const C = shape[1];
    checkOp(t, {
      name: `layerNorm 1000 + N(0,1) ${JSON.stringify(shape)}`,
      inputs: [{ data: x, shape }, ...params(C, 'wb')],
      run: ([x, w, b]) => layerNorm(x, w, b),
      ref: ([x, w, b]) => layerNormRef(x, C, w, b, 1e-5),
      // Finite differences at |x| ~ 1000 use h = 1e-3; their truncation error is ~1e-7 of the scale.
      forward: FWD, backward: BWD,
    });
  }
});

t.test('layerNorm gradients for the parameters alone (x frozen) and a custom eps', async (t) => {
  checkOp(t, {
    name: 'layerNorm (6,20) dx not needed, eps 0.1',
    inputs: [{ data: rng.normal(120), shape: [6, 20], grad: false }, ...params(20, 'wb')],
    run: ([x, w, b]) => layerNorm(x, w, b, 0.1),
    ref: ([x, w, b]) => layerNormRef(x, 20, w, b, 0.1),
    forward: FWD, backward: BWD,
  });
});

t.test('rmsNorm (LlamaGen: x * rsqrt(mean(x²) + eps) * w)', async (t) => {
  for (const shape of [[1, 1], [3, 7], [5, 33], [2, 1000], [4, 3, 17], [64, 300]]) {
    const C = shape[shape.length - 1];
    for (const affine of ['none', 'w'] as Affine[]) {
      checkOp(t, {
        name: `rmsNorm ${JSON.stringify(shape)} affine=${affine}`,
        inputs: [{ data: rng.normal(size(shape), 2), shape }, ...params(C, affine)],
        run: ([x, w]) => rmsNorm(x, w),
        ref: ([x, w]) => rmsNormRef(x, C, w ?? null, 1e-5),
        forward: FWD, backward: bwdFor(C),
      });
    }
  }
  checkOp(t, {
    name: 'rmsNorm (4,9) weight only, eps 1e-2',
    inputs: [{ data: rng.normal(36), shape: [4, 9], grad: false }, ...params(9, 'w')],
    run: ([x, w]) => rmsNorm(x, w, 1e-2),
    ref: ([x, w]) => rmsNormRef(x, 9, w, 1e-2),
    forward: FWD, backward: BWD,
  });
});

t.test('groupNorm with G in {1, 2, C} and HW in {1, 9, 50}', async (t) => {
  const N = 3, C = 4;
  for (const spatial of [[], [3, 3], [50]]) {
    const shape = [N, C, ...spatial], HW = size(spatial);
    for (const G of [1, 2, C]) {
      for (const affine of ['none', 'wb'] as Affine[]) {
        checkOp(t, {
          name: `groupNorm ${JSON.stringify(shape)} G=${G} affine=${affine}`,
          inputs: [{ data: rng.normal(size(shape), 2), shape }, ...params(C, affine)],
          run: ([x, w, b]) => groupNorm(x, G, w, b),
          ref: ([x, w, b]) => groupNormRef(x, C, HW, G, w ?? null, b ?? null, 1e-5),
          forward: FWD, backward: bwdFor((C / G) * HW),
        });
      }
    }
  }
  // Larger: several channels per group, enough work for the parallel paths, and a large offset.
  const shape = [2, 32, 8, 8];
  checkOp(t, {
    name: `groupNorm ${JSON.stringify(shape)} G=8 offset 1000`,
    inputs: [{ data: rng.normal(size(shape)).map((v) => 1000 + v), shape }, ...params(32, 'wb')],
    run: ([x, w, b]) => groupNorm(x, 8, w, b),
    ref: ([x, w, b]) => groupNormRef(x, 32, 64, 8, w, b, 1e-5),
    forward: FWD, backward: BWD,
  });
});

t.test('shape and argument errors name the op and the shapes', async (t) => {
  const x = tensor(rng.normal(24), [2, 4, 3]);
  const w3 = tensor(rng.normal(3)), w4 = tensor(rng.normal(4));
  const m0 = memory();
  t.throws(() => layerNorm(x, w4), /layerNorm: weight must have shape \[3\], got \[4\]/);
  t.throws(() => layerNorm(x, w3, w4), /layerNorm: bias must have shape \[3\], got \[4\]/);
  t.throws(() => rmsNorm(x, w4), /rmsNorm: weight must have shape \[3\]/);
  t.throws(() => groupNorm(x, 3), /groupNorm: 4 channels of \[2, 4, 3\] do not split into 3 groups/);
  t.throws(() => groupNorm(x, 2, w3), /groupNorm: weight must have shape \[4\], got \[3\]/);
  t.throws(() => groupNorm(w4, 1), /groupNorm: input must be \(N, C, \.\.\.spatial\)/);
  t.throws(() => layerNorm(x, null, null, -1), /eps must be finite and >= 0/);
  t.equal(memory().tensors, m0.tensors, 'failed calls leave no tensors behind');
  for (const v of [x, w3, w4]) v.dispose();
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, before.cpu.bytes, 'native bytes back to baseline');
  t.equal(after.cuda.bytes, before.cuda.bytes, 'device bytes back to baseline (DD2_DEFAULT_DEVICE=cuda)');
});
