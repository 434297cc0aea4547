// Sampling from the GPT teacher (lib/sample/ar-sample.ts): top-k / top-p filtering on known logits and
// its defining property on random rows, LlamaGen's CFG combination and temperature, KV-cached decoding
// against full recomputation (same logits, same tokens for the same seed, with and without CFG), greedy
// limits, and seeded reproducibility. Letters: B images, N tokens per image, V vocabulary, R rows (B or 2B).
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { GPT, resolveGPTConfig } from '../../lib/models/gpt.js';
import { filterLogits, processLogits, sampleTokens, type SampleOptions } from '../../lib/sample/ar-sample.js';
import { errorStats, Rng } from '../harness/compare.js';

const base = memory();
const NEG = -Infinity;

t.test('top-k and top-p on known logits', async (t) => {
  const k2 = Float32Array.from([1, 5, 3, 5, 2, 0]);
  filterLogits(k2, 1, 6, 2);
  t.same([...k2], [NEG, 5, NEG, 5, NEG, NEG], 'top-2 keeps the two 5s');
  const ties = Float32Array.from([1, 3, 3, 3, 0]);
  filterLogits(ties, 1, 5, 2);
  t.same([...ties], [NEG, 3, 3, 3, NEG], 'top-2 keeps every logit equal to the 2nd largest (LlamaGen: < kth removed)');
  const all = Float32Array.from([1, 2, 3]);
  filterLogits(all, 1, 3, 5);
  t.same([...all], [1, 2, 3], 'k >= V keeps everything');

  const p = [0.1, 0.5, 0.05, 0.2, 0.15], lg = p.map(Math.log);
  const topP = (pp: number, k = 0): number[] => {
    const a = Float32Array.from(lg);
    filterLogits(a, 1, 5, k, pp);
    return [...a].map((v, i) => (v === NEG ? -1 : i)).filter((i) => i >= 0);
  };
  t.same(topP(0.45), [1], 'p 0.45: the top token (0.5) alone');
  t.same(topP(0.55), [1, 3], 'p 0.55: 0.5 + 0.2');
  t.same(topP(0.8), [1, 3, 4], 'p 0.8: 0.5 + 0.2 + 0.15 (mass before the 0.15 is 0.7 <= 0.8)');
  t.same(topP(0.999), [0, 1, 2, 3, 4], 'p 0.999 keeps all');
  t.same(topP(0.7, 2), [1], 'top-2 then p 0.7 on the renormalised (0.714, 0.286)');
  t.same(topP(0.75, 2), [1, 3], 'top-2 then p 0.75');

  const two = Float32Array.from([...lg, ...[0, 0, 0, 0, 9]]);
  filterLogits(two, 2, 5, 0, 0.55);
  t.same([...two].map((v) => v !== NEG), [false, true, false, true, false, false, false, false, false, true], 'rows are independent');
  t.throws(() => filterLogits(new Float32Array(4), 1, 4, -1), RangeError, 'negative k');
  t.throws(() => filterLogits(new Float32Array(4), 1, 4, 0, 0), RangeError, 'p = 0');
  t.throws(() => filterLogits(new Float32Array(4), 2, 4), RangeError, 'wrong length');
});

t.test('top-p property on random rows: the shortest most-likely prefix with mass > p', async (t) => {
  const rng = new Rng(21), V = 50;
  let bad = 0;
  for (let r = 0; r < 200; r++) {
    const row = rng.normal(V, 2), pp = 0.05 + 0.9 * rng.next();
    const f = Float32Array.from(row);
    filterLogits(f, 1, V, 0, pp);
    const max = Math.max(...row), z = row.reduce((s, v) => s + Math.exp(v - max), 0);
    const prob = Array.from(row, (v) => Math.exp(v - max) / z);
    const kept = prob.map((q, i) => [q, i] as const).filter(([, i]) => f[i] !== NEG).sort((a, b) => b[0] - a[0]);
    const removed = prob.filter((_, i) => f[i] === NEG);
    const mass = kept.reduce((s, [q]) => s + q, 0), smallest = kept[kept.length - 1][0];
    const ok = (mass > pp || removed.length === 0) && mass - smallest <= pp + 1e-9 && removed.every((q) => q <= smallest);
    if (!ok) bad++;
  }
  t.equal(bad, 0, '200 random rows: kept set is a most-likely prefix, its mass exceeds p and is minimal');
});

t.test('CFG combination and temperature (LlamaGen convention)', async (t) => {
  // rows: cond (B = 1) then uncond; logits = uncond + cfg (cond - uncond), then / temperature.
  const raw = Float32Array.from([1, 2, 0, 4]);
  t.same([...processLogits(raw, 1, 2, { cfg: 2 })], [2, 0], 'u + 2(c - u)');
  t.same([...processLogits(raw, 1, 2, { cfg: 2, temperature: 0.5 })], [4, 0], 'then divided by the temperature');
  t.same([...processLogits(Float32Array.from([1, 2]), 1, 2, { temperature: 2 })], [0.5, 1], 'without guidance');
});

const cfgModel = resolveGPTConfig({ vocabSize: 40, numClasses: 5, gridH: 3, gridW: 4, dim: 32, nLayer: 2, nHead: 2, multipleOf: 32 });

function model(seed: number): GPT {
  const m = new GPT(cfgModel, new Generator(seed));
  const rng = new Rng(seed);
  m.loadStateDict(new Map([...m.stateDict()].map(([k, v]) => [k, k.endsWith('norm.weight') ? v : rng.normal(v.length, 0.4)])));
  return m;
}

interface Run { tokens: Int32Array; logits: Float32Array[] }
function sample(m: GPT, labels: Int32Array, seed: number, o: SampleOptions): Run {
  const logits: Float32Array[] = [];
  const tokens = sampleTokens(m, labels, new Generator(seed), { ...o, onLogits: (_, raw) => logits.push(raw) });
  return { tokens, logits };
}

t.test('KV-cached decoding equals full recomputation', async (t) => {
  const m = model(3);
  const labels = Int32Array.from([0, 3, 4]), B = 3, N = 12, V = 40;
  const settings: [string, SampleOptions][] = [
    ['no guidance', {}], ['cfg 3', { cfg: 3 }], ['cfg 2, top-k 10, top-p 0.9, temperature 1.3', { cfg: 2, topK: 10, topP: 0.9, temperature: 1.3 }],
  ];
  for (const [name, o] of settings) {
    const c = sample(m, labels, 17, { ...o, cached: true });
    const u = sample(m, labels, 17, { ...o, cached: false });
    t.same([...c.tokens], [...u.tokens], `${name}: the same ${B}x${N} tokens`);
    const flat = c.logits.flatMap((a) => [...a]);
    const s = errorStats(flat, u.logits.flatMap((a) => [...a]));
    const scale = Math.max(...flat.map(Math.abs));
    // Measured maxAbs 8.7e-6 (no guidance) and 0 (guided) on logits up to ~8: the two paths run GEMM and
    // attention on different shapes (M = R vs R·(1+pos) rows, Tq = 1 vs 1+pos), so roundings differ.
    t.ok(s.maxAbs < 3e-5, `${name}: per-step logits agree, maxAbs ${s.maxAbs.toExponential(2)} (max |logit| ${scale.toFixed(1)})`);
    // One teacher-forced pass over the sampled sequence gives every step's logits too.
    const R = c.logits[0].length / V, rows = Int32Array.from({ length: R }, (_, r) => (r < B ? labels[r] : 5));
    const toks = new Int32Array(R * N);
    for (let r = 0; r < R; r++) toks.set(c.tokens.subarray((r % B) * N, (r % B + 1) * N), r * N);
    const tf = noGrad(() => tidy(() => { m.eval(); return m.logitsForImages(tensor(rows, [R]), tensor(toks, [R, N])).toFloat32Array(); }));
    const step = new Float32Array(R * N * V);
    c.logits.forEach((a, pos) => { for (let r = 0; r < R; r++) step.set(a.subarray(r * V, (r + 1) * V), (r * N + pos) * V); });
    const s2 = errorStats(step, tf);
    t.ok(s2.maxAbs < 3e-5, `${name}: equal to one teacher-forced pass, maxAbs ${s2.maxAbs.toExponential(2)}`);
  }
  t.not([...sample(m, labels, 17, { cfg: 3 }).tokens].join(), [...sample(m, labels, 17, {}).tokens].join(), 'guidance changes the samples');

  // The cache also takes chunks: [class, t_0..t_4] at 0, then t_5..t_10 at 6, against one full pass.
  const toks = new Rng(4).ints(B * (N - 1), V), lab = tensor(labels, [B]);
  const [full, chunked] = noGrad(() => tidy(() => {
    m.eval();
    const all = m.features(m.embed(lab, tensor(toks, [B, N - 1]))).toFloat32Array();     // (B, N, E)
    const cache = m.createCache(B);
    const head = Int32Array.from({ length: B * 5 }, (_, i) => toks[Math.floor(i / 5) * (N - 1) + (i % 5)]);
    const tail = Int32Array.from({ length: B * 6 }, (_, i) => toks[Math.floor(i / 6) * (N - 1) + 5 + (i % 6)]);
    const a = m.features(m.embed(lab, tensor(head, [B, 5])), { start: 0, cache }).toFloat32Array();
    const b = m.features(m.embedTokens(tensor(tail, [B, 6])), { start: 6, cache }).toFloat32Array();
    cache.dispose();
    const E = cfgModel.dim, joined = new Float32Array(B * N * E);
    for (let r = 0; r < B; r++) {
      joined.set(a.subarray(r * 6 * E, (r + 1) * 6 * E), r * N * E);
      joined.set(b.subarray(r * 6 * E, (r + 1) * 6 * E), (r * N + 6) * E);
    }
    return [all, joined];
  }));
  lab.dispose();
  const s3 = errorStats(chunked, full);
  // Measured maxAbs 0 (same GEMM shapes per row block); the bound allows for other BLAS blockings.
  t.ok(s3.maxAbs < 1e-5, `cache filled in chunks of 6 and 6 positions = one pass, maxAbs ${s3.maxAbs.toExponential(2)}`);
  m.dispose();
});

t.test('greedy limits and seeded reproducibility', async (t) => {
  const m = model(5);
  const labels = Int32Array.from([1, 2, 2, 4, 0]), N = 12, V = 40;
  const argmaxOf = (r: Run, B: number, cfg = 1): number[] => r.logits.flatMap((raw) => Array.from({ length: B }, (_, b) => {
    const l = processLogits(raw, B, V, { cfg });
    return l.indexOf(Math.max(...l.subarray(b * V, (b + 1) * V)), b * V) - b * V;
  }));
  const order = (tok: Int32Array, B: number): number[] => Array.from({ length: N * B }, (_, i) => tok[(i % B) * N + Math.floor(i / B)]);
  const cold = sample(m, labels, 1, { temperature: 1e-6, cfg: 2 });
  t.same(order(cold.tokens, 5), argmaxOf(cold, 5, 2), 'temperature -> 0: every token is the argmax of the guided logits');
  const k1 = sample(m, labels, 2, { topK: 1 });
  t.same(order(k1.tokens, 5), argmaxOf(k1, 5), 'top-k 1: greedy');
  const a = sample(m, labels, 42, { cfg: 2, topP: 0.95 }), b = sample(m, labels, 42, { cfg: 2, topP: 0.95 });
  const c = sample(m, labels, 43, { cfg: 2, topP: 0.95 });
  t.same([...a.tokens], [...b.tokens], 'same seed, same tokens');
  t.not([...a.tokens].join(), [...c.tokens].join(), 'another seed, other tokens');
  const g = new Generator(9);
  sampleTokens(m, labels, g, {});
  t.equal(g.offset, N * 8, 'each step draws one value per image (5 rounded up to a Philox block of 4: 8 per step)');
  t.equal(m.training, true, 'the model is back in training mode afterwards');
  t.throws(() => sampleTokens(m, Int32Array.from([5]), new Generator(0)), RangeError, 'class outside [0, numClasses)');
  m.dispose();
  const plain = new GPT({ ...cfgModel, classDropoutProb: 0 }, new Generator(0));
  t.throws(() => sampleTokens(plain, Int32Array.from([1]), new Generator(0), { cfg: 2 }), /null class/, 'CFG needs the null class');
  plain.dispose();
});

t.test('no leaks', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, base.cpu.bytes, 'native bytes back to baseline');
});
