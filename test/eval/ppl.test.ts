// PPL (lib/eval/ppl.ts): StyleGAN's slerp on the sphere rescaled to radius √D, the 1/99 percentile filter
// against numpy's 'lower'/'higher' rule, and the whole measurement on a toy sampler whose images are a
// linear function of the noise, image = s·z, under the squared L2 distance: then d/ε² → s²·|dz/dt|² =
// s²·D·Ω², Ω the angle between the two draws, which the test recomputes independently from the returned angle.
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { reshape } from '../../lib/tensor/ops/shape.js';
import { mulScalar, square, sub, tanh } from '../../lib/tensor/ops/elementwise.js';
import { sum } from '../../lib/tensor/ops/reduce.js';
import type { ImageSampler } from '../../lib/eval/sampler.js';
import { pplAggregate, pplSamples, perceptualPathLength, percentileHigher, percentileLower, slerpScaled, toGraySize,
  PPL_EPSILON } from '../../lib/eval/ppl.js';
import { Rng } from '../harness/compare.js';

const base = memory();

/** images (B, 1, N, C) = s · noise (B, N, C): linear in the noise. */
function linearSampler(N: number, C: number, s: number): ImageSampler & { calls: number } {
  return {
    name: 'linear', steps: 1, numClasses: 3, channels: 1, size: N, noiseShape: [N, C] as const, calls: 0,
    generate(): Tensor { throw new Error('not used'); },
    generateFromNoise(labels: Int32Array, noise: Tensor): Tensor {
      this.calls++;
      if (noise.shape[0] !== labels.length) throw new Error('labels and noise disagree');
      return mulScalar(noise, s);
    },
    decode(lat: Tensor): Tensor { return reshape(lat, [lat.shape[0], 1, lat.shape[1], lat.shape[2]]); },
    dispose(): void {},
  };
}
const l2 = (a: Tensor, b: Tensor): Tensor => sum(square(sub(a, b)), [1, 2, 3]);

t.test('slerpScaled: ends, radius, constant angular speed', async (t) => {
  const rng = new Rng(5), D = 40;
  const a = rng.normal(D), b = rng.normal(D), out = new Float64Array(D), r = Math.sqrt(D);
  const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
  const omega = slerpScaled(a, b, 0, r, out);
  const na = norm(a), nb = norm(b);
  t.ok(Array.from(out).every((v, i) => Math.abs(v - (a[i] / na) * r) < 1e-12), 't = 0 gives â·√D');
  slerpScaled(a, b, 1, r, out);
  t.ok(Array.from(out).every((v, i) => Math.abs(v - (b[i] / nb) * r) < 1e-12), 't = 1 gives b̂·√D');
  const dot = Array.from(a).reduce((s, x, i) => s + (x / na) * (b[i] / nb), 0);
  t.ok(Math.abs(omega - Math.acos(dot)) < 1e-12, 'returns the angle');
  const p = new Float64Array(D), q = new Float64Array(D);
  for (const tt of [0.1, 0.5, 0.9]) {
    slerpScaled(a, b, tt, r, p);
    t.ok(Math.abs(norm(p) - r) < 1e-12, `radius √D at t=${tt}`);
    slerpScaled(a, b, tt + 1e-3, r, q);
    const chord = norm(Array.from(p, (v, i) => v - q[i]));
    const expected = 2 * r * Math.sin(1e-3 * omega / 2);
    t.ok(Math.abs(chord - expected) < 1e-9, `chord over dt = 1e-3 at t=${tt}: ${chord} vs ${expected}`);
  }
});

t.test('percentile filter follows numpy lower/higher', async (t) => {
  const v = Float64Array.from({ length: 101 }, (_, i) => 101 - i);   // 1..101, unsorted
  const s = Float64Array.from(v).sort();
  t.equal(percentileLower(s, 1), 2, "1st percentile 'lower' of 1..101 (index 1.0)");
  t.equal(percentileHigher(s, 99), 100, "99th percentile 'higher' of 1..101 (index 99.0)");
  const r = pplAggregate(v);
  t.same([r.value, r.kept, r.n], [51, 99, 101], 'mean of 2..100');
  // 10 values: index 0.09 -> lower 0, higher ceil(8.91) = 9: nothing dropped
  const ten = Float64Array.from([5, 1, 9, 3, 7, 2, 8, 4, 6, 1000]);
  t.equal(pplAggregate(ten).kept, 10, 'with 10 values numpy keeps all (lower idx 0, higher idx 9)');
  const big = Float64Array.from({ length: 201 }, (_, i) => (i === 7 ? 1e9 : i === 8 ? -1e9 : 1));
  const rb = pplAggregate(big);
  t.equal(rb.value, 1, `the outliers are dropped (kept ${rb.kept} of 201)`);
  t.throws(() => pplAggregate(Float64Array.of(1, NaN)), /NaN/);
});

t.test('PPL of a linear sampler is s²·D·Ω² per pair', async (t) => {
  const N = 6, C = 4, D = N * C, s = 0.5;
  const smp = linearSampler(N, C, s);
  const r = pplSamples(smp, l2, { pairs: 40, seed: 3, batch: 16 });
  t.equal(smp.calls, 3, '40 pairs in batches of 16: 3 generator calls');
  let worst = 0;
  for (let i = 0; i < 40; i++) {
    const expected = s * s * D * r.angle[i] ** 2;
    worst = Math.max(worst, Math.abs(r.values[i] - expected) / expected);
  }
  t.ok(worst < 2e-3, `every pair within 0.2% of s²·D·Ω² (worst relative error ${worst.toExponential(2)}; float32 images 1e-4 apart)`);
  t.ok(r.t.every((x) => x >= 0 && x < 1), 't in [0, 1)');
  t.ok(r.labels.every((l) => l >= 0 && l < 3), 'labels are classes of the sampler');
  const again = pplSamples(linearSampler(N, C, s), l2, { pairs: 40, seed: 3, batch: 16 });
  t.same(Array.from(again.values), Array.from(r.values), 'the same seed gives the same values');
  const other = pplSamples(linearSampler(N, C, s), l2, { pairs: 40, seed: 4, batch: 16 });
  t.not(other.values[0], r.values[0], 'another seed gives other draws');
  // the aggregate: with D large, Ω concentrates at π/2, so PPL → s²·D·(π²/4 + 1/D) (E[acos(x)²], x ~ N(0, 1/D))
  const D2 = 32 * 8, big = linearSampler(32, 8, 1);
  const res = perceptualPathLength(big, l2, { pairs: 400, seed: 11, batch: 100 });
  const expect = D2 * (Math.PI ** 2 / 4 + 1 / D2);
  // the per-pair spread of Ω² is ~8% at D = 256, so the mean of 400 has a standard error of ~0.4%: 3% is ~7 SE
  t.ok(Math.abs(res.value - expect) / expect < 0.03, `PPL ${res.value.toFixed(2)} ≈ D(π²/4 + 1/D) = ${expect.toFixed(2)} (3%)`);
  t.equal(res.n, 400);
  t.ok(res.kept >= 392 && res.kept <= 396, `1/99 filter keeps ${res.kept} of 400`);
  t.equal(PPL_EPSILON, 1e-4);
});

t.test('PPL refuses a sampler without a noise input', async (t) => {
  const smp = { ...linearSampler(2, 2, 1), noiseShape: undefined, generateFromNoise: undefined };
  t.throws(() => pplSamples(smp, l2, { pairs: 2, seed: 0, batch: 2 }), /not driven by a noise input/);
});

t.test('toGraySize: luma of RGB and area resampling in float', async (t) => {
  const B = 2, S = 4;
  const v = new Float32Array(B * 3 * S * S);
  for (let b = 0; b < B; b++) for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) v[(b * 3 + c) * S * S + p] = [0.2, -0.4, 1][c] + b * 0.1 + p * 1e-5;
  const x = tensor(v, [B, 3, S, S]);
  const y = toGraySize(x, 2);
  t.same(y.shape, [B, 1, 2, 2]);
  const out = y.toFloat32Array();
  for (let b = 0; b < B; b++) {
    const luma = 0.299 * 0.2 + 0.587 * -0.4 + 0.114 * 1 + b * 0.1;
    const p0 = (0 + 1 + 4 + 5) / 4 * 1e-5;          // mean pixel offset of the top-left 2x2 block
    t.ok(Math.abs(out[b * 4] - (luma + p0)) < 1e-6, `image ${b}: ${out[b * 4]} vs ${luma + p0}`);
  }
  const g = tensor(new Float32Array(B * S * S).fill(0.25), [B, 1, S, S]);
  t.equal(toGraySize(g, S), g, 'already the right shape: returned as is');
  x.dispose(); y.dispose(); g.dispose();
});

t.test('dPPL with the domain network distance on 32x32 RGB images', async (t) => {
  const { FeatureNet, perceptualDistance } = await import('../../lib/metrics/feature-net.js');
  const net = new FeatureNet(1);
  const dist = (a: Tensor, b: Tensor): Tensor => perceptualDistance(net, toGraySize(a, 28), toGraySize(b, 28));
  // images (B, 3, 32, 32): the (32·3, 32) noise reshaped, through tanh to stay in [-1, 1]
  const smp: ImageSampler = { ...linearSampler(96, 32, 0.3), channels: 3, size: 32,
    decode: (lat: Tensor) => tanh(reshape(lat, [lat.shape[0], 3, 32, 32])) };
  const r = perceptualPathLength(smp, dist, { pairs: 6, seed: 1, batch: 3 });
  t.ok(Number.isFinite(r.value) && r.value > 0, `a finite positive dPPL: ${r.value.toFixed(2)} (6 pairs, random network)`);
  const a = tensor(new Float32Array(2 * 3 * 32 * 32).fill(0.1), [2, 3, 32, 32]);
  const d0 = tidy(() => dist(a, a).toFloat32Array());
  t.same(Array.from(d0), [0, 0], 'identical images are at distance 0');
  a.dispose();
  net.dispose();
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, base.tensors, 'live tensors back to the start');
});
