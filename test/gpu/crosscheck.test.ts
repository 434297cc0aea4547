// CUDA vs CPU cross-check: each op runs on both devices from the same inputs and the same random
// upstream gradient; outputs and input gradients must agree to float32 accuracy (both backends are
// also checked against float64 references by the op suite run with DD2_DEFAULT_DEVICE=cuda).
import t from 'tap';
import { native } from '../../lib/tensor/native.js';
import { tensor } from '../../lib/tensor/create.js';
import { tidy } from '../../lib/tensor/engine.js';
import { backward } from '../../lib/autograd/tape.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import * as E from '../../lib/tensor/ops/elementwise.js';
import { sum, max, logsumexp } from '../../lib/tensor/ops/reduce.js';
import { matmul } from '../../lib/tensor/ops/matmul.js';
import { softmax, logSoftmax, crossEntropy } from '../../lib/tensor/ops/softmax.js';
import { layerNorm, rmsNorm, groupNorm } from '../../lib/tensor/ops/norm.js';
import { embedding, gather } from '../../lib/tensor/ops/index.js';
import { conv2d, upsampleNearest } from '../../lib/tensor/ops/conv.js';
import { attention } from '../../lib/tensor/ops/attention.js';
import { permute, concat, slice } from '../../lib/tensor/ops/shape.js';
import { Rng } from '../harness/compare.js';

const info = native.build_info().cuda;
const skip = !info.compiled ? 'addon built without CUDA' : info.devices === 0 ? `no GPU: ${info.error}` : false;
const rng = new Rng(2024);

interface In { data: Float32Array | Int32Array; shape: number[] }
const f = (...shape: number[]): In => ({ data: rng.normal(shape.reduce((a, b) => a * b, 1)), shape });
const ints = (hi: number, ...shape: number[]): In => ({ data: rng.ints(shape.reduce((a, b) => a * b, 1), hi), shape });

const cases: [string, In[], (xs: Tensor[]) => Tensor][] = [
  ['silu∘mul broadcast', [f(4, 33), f(33)], ([a, b]) => E.silu(E.mul(a, b))],
  ['gelu, tanh, exp', [f(1000)], ([a]) => E.exp(E.tanh(E.gelu(a)))],
  ['sum / max / logsumexp', [f(6, 130)], ([a]) => E.add(E.add(sum(a, 1), max(a, 1)), logsumexp(a, 1))],
  ['batched matmul ᵀ', [f(3, 17, 40), f(3, 23, 40)], ([a, b]) => matmul(a, b, { transB: true })],
  ['softmax / logSoftmax', [f(9, 257)], ([a]) => E.add(softmax(a), logSoftmax(a))],
  ['crossEntropy', [f(37, 64), ints(64, 37)], ([a, tg]) => crossEntropy(a, tg)],
  ['layerNorm', [f(12, 96), f(96), f(96)], ([x, w, b]) => layerNorm(x, w, b)],
  ['rmsNorm', [f(12, 96), f(96)], ([x, w]) => rmsNorm(x, w)],
  ['groupNorm', [f(2, 8, 5, 5), f(8), f(8)], ([x, w, b]) => groupNorm(x, 4, w, b)],
  ['embedding', [f(50, 16), ints(50, 7, 3)], ([w, i]) => embedding(w, i)],
  ['gather', [f(4, 30), ints(30, 4, 9)], ([x, i]) => gather(x, 1, i)],
  ['conv2d 3x3 s2 p1', [f(2, 3, 9, 7), f(5, 3, 3, 3), f(5)], ([x, w, b]) => conv2d(x, w, b, { stride: 2, padding: 1 })],
  ['upsample x2', [f(2, 3, 4, 5)], ([x]) => upsampleNearest(x, 2)],
  ['attention causal', [f(2, 3, 37, 64), f(2, 3, 37, 64), f(2, 3, 37, 64)], ([q, k, v]) => attention(q, k, v, { causal: true })],
  ['permute/slice/concat', [f(3, 4, 5)], ([x]) => concat([slice(permute(x, [2, 0, 1]), 0, 1, 4), slice(permute(x, [2, 0, 1]), 0, 0, 2)], 0)],
];

function runOn(device: 'cpu' | 'cuda', ins: In[], fn: (xs: Tensor[]) => Tensor, w: Float32Array | null):
  { y: Float32Array; grads: Float32Array[] } {
  return tidy(() => {
    const xs = ins.map((s) => {
      const x = tensor(s.data, s.shape, { device });
      if (x.dtype === 'float32') x.requiresGrad = true;
      return x;
    });
    const y = fn(xs);
    const up = w ?? rng.normal(y.size);
    backward(y, tensor(up, [...y.shape], { device }));
    const out = { y: y.toFloat32Array(), grads: xs.filter((x) => x.requiresGrad).map((x) => x.grad!.toFloat32Array()) };
    for (const x of xs) { x.grad?.dispose(); x.grad = null; }
    return out;
  });
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / Math.max(den, 1e-30);
}

t.test('cuda agrees with cpu', { skip }, async (t) => {
  for (const [name, ins, fn] of cases) {
    const wseed = rng.normal(1 << 16);
    const cpu = runOn('cpu', ins, fn, null);
    const w = wseed.subarray(0, cpu.y.length);
    const c1 = runOn('cpu', ins, fn, w), g1 = runOn('cuda', ins, fn, w);
    // max |cuda - cpu| relative to the largest magnitude: float32 kernels with different summation
    // orders agree to ~1e-6 here; 2e-5 leaves margin for reductions over a few hundred terms.
    const ey = relErr(g1.y, c1.y);
    t.ok(ey <= 2e-5, `${name}: output max rel diff ${ey.toExponential(2)}`);
    c1.grads.forEach((g, k) => {
      const eg = relErr(g1.grads[k], g);
      t.ok(eg <= 2e-5, `${name}: d/dx${k} max rel diff ${eg.toExponential(2)}`);
    });
  }
});
