// The per-token flow map (lib/distill/flow-map.ts) and flow-map sampling of the teachers: in 1-D the map is the
// monotone transport, so each noise value's code is known in closed form (the quantiles of p); in 2-D its code
// frequencies match p; dense and top-k probabilities give the same codes; sequences drawn through the flow map
// from the tabular teacher follow its exact joint (within the sampling noise), deterministically in the noise;
// with top-k 1 the AR teacher's flow samples equal its greedy categorical samples; a wrong noise shape is named.
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { resolveGPTConfig } from '../../lib/models/gpt.js';
import { ContinuousGPT } from '../../lib/models/continuous-gpt.js';
import { normal } from '../../lib/nn/init.js';
import { flowToCodes } from '../../lib/distill/flow-map.js';
import { ARScoreTeacher, jointHistogram, totalVariation } from '../../lib/distill/teacher.js';
import { cornerTeacher, N, V } from './tabular.js';

const base = memory();

/** Φ^{-1} by bisection on the error function (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7). */
function normalQuantile(p: number): number {
  const cdf = (x: number): number => {
    const z = Math.abs(x) / Math.SQRT2, k = 1 / (1 + 0.3275911 * z);
    const erf = 1 - k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429)))) * Math.exp(-z * z);
    return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
  };
  let lo = -10, hi = 10;
  for (let i = 0; i < 100; i++) { const m = (lo + hi) / 2; if (cdf(m) < p) lo = m; else hi = m; }
  return (lo + hi) / 2;
}

t.test('1-D: the flow map is the monotone transport (codes from the quantiles of p)', async (t) => {
  // codes at -1, 0.5, 2 with p = (0.25, 0.5, 0.25): ε < Φ^{-1}(0.25) -> code 0, ε > Φ^{-1}(0.75) -> code 2
  const cb = tensor(Float32Array.from([-1, 0.5, 2]), [3, 1]);
  const p = [0.25, 0.5, 0.25], B = 4000;
  const e = Float32Array.from({ length: B }, (_, i) => -3 + (6 * i) / (B - 1));
  const q = noGrad(() => tidy(() => flowToCodes(tensor(e, [B, 1]), { dense: tensor(Float32Array.from({ length: 3 * B }, (_, k) => p[k % 3]), [B, 3]) }, cb, 64)));
  const b1 = normalQuantile(0.25), b2 = normalQuantile(0.75);
  let wrong = 0, near = 0;
  for (let i = 0; i < B; i++) {
    const want = e[i] < b1 ? 0 : e[i] < b2 ? 1 : 2;
    if (Math.min(Math.abs(e[i] - b1), Math.abs(e[i] - b2)) < 0.03) { near++; continue; }   // solver error at the boundary
    if (q[i] !== want) wrong++;
  }
  t.equal(wrong, 0, `every token away from the boundaries (${B - near} of ${B}) lands on its quantile's code`);
  cb.dispose();
});

t.test('2-D: code frequencies follow p; top-k sparse gives the dense codes', async (t) => {
  const teacher = cornerTeacher();
  const B = 40000, p = [0.4, 0.3, 0.2, 0.1];
  const eps = new Generator(5).normal([B, 2]);
  const dense = tensor(Float32Array.from({ length: 4 * B }, (_, k) => p[k % 4]), [B, 4]);
  const qd = noGrad(() => flowToCodes(eps, { dense }, teacher.codebook));
  const freq = [0, 0, 0, 0];
  for (const q of qd) freq[q] += 1 / B;
  // multinomial sd at B = 40,000 is <= 0.0025; measured: 0.4052 0.3051 0.1913 0.0984 at 32 steps (the Euler
  // solver's bias, up to 0.009, exceeds the sampling noise here; the joint test below bounds its effect)
  t.ok(freq.every((f, j) => Math.abs(f - p[j]) < 0.015), `frequencies ${freq.map((f) => f.toFixed(4))} vs ${p}`);
  // sparse: the 3 largest entries renormalised, against the dense row with the 4th set to 0
  const p3 = [0.4, 0.3, 0.2].map((x) => x / 0.9);
  const idx = tensor(Int32Array.from({ length: 3 * B }, (_, k) => k % 3), [B, 3], { dtype: 'int32' });
  const val = tensor(Float32Array.from({ length: 3 * B }, (_, k) => p3[k % 3]), [B, 3]);
  const d3 = tensor(Float32Array.from({ length: 4 * B }, (_, k) => (k % 4 < 3 ? p3[k % 4] : 0)), [B, 4]);
  const qs = noGrad(() => flowToCodes(eps, { idx, val }, teacher.codebook)), qd3 = noGrad(() => flowToCodes(eps, { dense: d3 }, teacher.codebook));
  let same = 0;
  for (let i = 0; i < B; i++) if (qs[i] === qd3[i]) same++;
  t.ok(same >= B - 5, `top-k and dense agree on ${same} of ${B} tokens`);
  t.notOk(qs.includes(3), 'no token lands on a code outside the top-k');
  for (const x of [eps, dense, idx, val, d3]) x.dispose();
  t.throws(() => tidy(() => flowToCodes(tensor(new Float32Array(6), [2, 3]), { dense: tensor(new Float32Array(8), [2, 4]) }, teacher.codebook)),
    /flow map: eps .* must be \(B, 2\)/, 'a noise of the wrong width is named');
  t.throws(() => tidy(() => flowToCodes(tensor(new Float32Array(4), [2, 2]), { dense: tensor(new Float32Array(8), [2, 4]) }, teacher.codebook, 0)),
    /steps must be an integer >= 1/);
  teacher.dispose();
});

t.test('tabular teacher: flow-map sequences follow the exact joint, deterministically in the noise', async (t) => {
  const teacher = cornerTeacher();
  const S = 20000, labels = new Int32Array(S);
  const eps = new Generator(8).normal([S, N, 2]);
  const a = teacher.sample(labels, new Generator(1), { eps });
  const b = teacher.sample(labels, new Generator(2), { eps });
  const exact = teacher.joint(0);
  const tv = totalVariation(jointHistogram(a.idx, N, V), exact);
  const ref = teacher.sample(labels, new Generator(3));
  const tvCat = totalVariation(jointHistogram(ref.idx, N, V), exact);
  // measured: flow map 0.0152 (32 steps; 16 steps 0.022), categorical draws 0.013 (the sampling noise)
  t.ok(tv < 0.03, `flow-map TV ${tv.toFixed(4)} < 0.03 (categorical draws: ${tvCat.toFixed(4)})`);
  t.same(a.idx, b.idx, 'the same noise gives the same sequences whatever the generator');
  t.throws(() => teacher.sample(new Int32Array(3), new Generator(1), { eps }), /flow noise .* must be \(3, 3, 2\)/);
  for (const x of [a.z, b.z, ref.z, eps]) x.dispose();
  teacher.dispose();
});

t.test('AR teacher with top-k 1: flow samples are the greedy samples', async (t) => {
  const gen = new Generator(4);
  const gpt = resolveGPTConfig({ vocabSize: 16, numClasses: 3, gridH: 2, gridW: 2, dim: 32, nLayer: 1, nHead: 2, classDropoutProb: 0.1,
    tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0 });
  const model = new ContinuousGPT({ gpt, codeDim: 4, inputHidden: 16 }, gen);
  noGrad(() => {                                  // the output head starts at zero (all logits tied): give it weights
    const w = normal(model.output!.weight.shape, 0.5, 0, gen);
    model.loadStateDict(new Map([['output.weight', w.toFloat32Array()]]), { strict: false });
    w.dispose();
  });
  const codebook = tensor(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.3)), [16, 4]);
  const teacher = new ARScoreTeacher(model, codebook, { cfg: 2, topK: 1, topP: 1, temperature: 1 });
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2]);
  const eps = new Generator(9).normal([6, 4, 4]);
  const f = teacher.sample(labels, new Generator(1), { eps, steps: 8 });
  const c = teacher.sample(labels, new Generator(1));
  t.same(f.idx, c.idx, 'one-code distributions: the flow map ends on that code');
  const c2 = teacher.sample(labels, new Generator(2));
  t.same(c2.idx, c.idx, 'the greedy samples do not depend on the generator (the check above can fail)');
  c2.z.dispose();
  for (const x of [f.z, c.z, eps]) x.dispose();
  teacher.dispose();
});

t.test('no leaks', async (t) => {
  t.equal(memory().tensors, base.tensors, 'live tensors back to baseline');
});
