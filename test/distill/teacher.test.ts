// Score teachers (lib/distill/teacher.ts): ARScoreTeacher.probs equals the float64 softmax of the CFG-combined
// logits of the continuous teacher (LlamaGen's uncond + cfg·(cond − uncond)), dense and top-k sparse, with the
// prefix read from z and position i's own token ignored; its KV-cached samples only use codes of the
// support; TabularTeacher's probs are the table rows of the snapped prefix and its samples follow the joint.
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { concat, slice } from '../../lib/tensor/ops/shape.js';
import { resolveGPTConfig } from '../../lib/models/gpt.js';
import { ContinuousGPT } from '../../lib/models/continuous-gpt.js';
import { normal } from '../../lib/nn/init.js';
import { ARScoreTeacher, TabularTeacher, disposeProbs, jointHistogram, probsFromLogits, totalVariation } from '../../lib/distill/teacher.js';
import { Rng } from '../harness/compare.js';

const base = memory();
const V = 16, C = 4, K = 3, H = 2, W = 2, N = H * W;

/** A random continuous teacher with a non-zero output head. */
function tinyTeacher(seed: number): ContinuousGPT {
  const gen = new Generator(seed);
  const gpt = resolveGPTConfig({ vocabSize: V, numClasses: K, gridH: H, gridW: W, dim: 32, nLayer: 2, nHead: 2, classDropoutProb: 0.1,
    tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0 });
  const m = new ContinuousGPT({ gpt, codeDim: C, inputHidden: 16 }, gen);
  noGrad(() => {
    const w = normal(m.output!.weight.shape, 0.5, 0, gen);
    m.loadStateDict(new Map([['output.weight', w.toFloat32Array()]]), { strict: false });
    w.dispose();
  });
  return m.eval();
}

/** Float64 reference: softmax of (u + cfg·(c − u))/temp over the top-k logits of each row. */
function reference(model: ContinuousGPT, labels: Int32Array, z: Float32Array, cfg: number, topK: number): Float64Array {
  const B = labels.length;
  const raw = noGrad(() => tidy(() => {
    const zt = tensor(z, [B, N, C]);
    const inp = slice(zt, 1, 0, N - 1);
    const lab = Int32Array.from([...labels, ...labels.map(() => K)]);
    return model.forward(tensor(lab, [2 * B]), concat([inp, inp], 0)).toFloat32Array();   // (2B, N, V)
  }));
  const out = new Float64Array(B * N * V);
  for (let r = 0; r < B * N; r++) {
    const l = Array.from({ length: V }, (_, j) => raw[B * N * V + r * V + j] + cfg * (raw[r * V + j] - raw[B * N * V + r * V + j]));
    const kth = topK > 0 ? [...l].sort((a, b) => b - a)[topK - 1] : -Infinity;
    const max = Math.max(...l);
    let s = 0;
    for (let j = 0; j < V; j++) if (l[j] >= kth) s += Math.exp(l[j] - max);
    for (let j = 0; j < V; j++) out[r * V + j] = l[j] >= kth ? Math.exp(l[j] - max) / s : 0;
  }
  return out;
}

t.test('ARScoreTeacher.probs = softmax of the CFG-combined logits, dense and top-k', async (t) => {
  const model = tinyTeacher(1);
  const codebook = tensor(Float32Array.from({ length: V * C }, (_, i) => Math.sin(i * 1.7)), [V, C]);
  const rng = new Rng(3), B = 5;
  const labels = Int32Array.from({ length: B }, () => Math.floor(rng.next() * K));
  const z = rng.normal(B * N * C);
  for (const [cfg, topK] of [[2, 0], [2, 5], [1.5, 1]] as const) {
    const teacher = new ARScoreTeacher(model, codebook, { cfg, topK, topP: 1, temperature: 1 });
    const ref = reference(model, labels, z, cfg, topK);
    const p = tidy(() => teacher.probs(tensor(labels, [B]), tensor(z, [B, N, C])));
    const got = new Float64Array(B * N * V);
    if (topK > 0) {
      t.ok(p.idx && p.val && !p.dense, `top-k ${topK}: sparse probabilities`);
      t.same(p.idx!.shape, [B * N, topK], 'idx (B·N, k)');
      const idx = p.idx!.toInt32Array(), val = p.val!.toFloat32Array();
      for (let r = 0; r < B * N; r++) for (let k = 0; k < topK; k++) got[r * V + idx[r * topK + k]] += val[r * topK + k];
    } else {
      t.same(p.dense!.shape, [B * N, V], 'dense (B·N, V)');
      got.set(p.dense!.toFloat32Array());
    }
    disposeProbs(p);
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - ref[i]));
    // Measured max error ~3e-7 (float32 logits); the bound leaves room for BLAS differences.
    t.ok(err < 1e-5, `cfg ${cfg}, top-k ${topK}: max |p − p_ref| = ${err.toExponential(2)}`);
  }
  // Position i's own token does not change row i (the prefix is z_<i); the last token changes nothing.
  const teacher = new ARScoreTeacher(model, codebook, { cfg: 2, topK: 0, topP: 1, temperature: 1 });
  const z2 = Float32Array.from(z);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) z2[(b * N + N - 1) * C + c] += 3;
  const [p1, p2] = [z, z2].map((zz) => tidy(() => {
    const p = teacher.probs(tensor(labels, [B]), tensor(zz, [B, N, C]));
    const a = p.dense!.toFloat32Array();
    disposeProbs(p);
    return a;
  }));
  t.ok(p1.every((v, i) => v === p2[i]), 'the last token is never read');
  model.dispose();
  codebook.dispose();
});

t.test('ARScoreTeacher.sample: KV-cached draws stay in the top-k support of probs()', async (t) => {
  const model = tinyTeacher(2);
  const codebook = tensor(Float32Array.from({ length: V * C }, (_, i) => Math.cos(i * 0.9)), [V, C]);
  const teacher = new ARScoreTeacher(model, codebook, { cfg: 2, topK: 3, topP: 1, temperature: 1 });
  const labels = Int32Array.from([0, 1, 2, 1, 0, 2]);
  const s = teacher.sample(labels, new Generator(5));
  t.same(s.z.shape, [labels.length, N, C], 'z (B, N, C)');
  const zh = s.z.toFloat32Array(), cb = codebook.toFloat32Array();
  t.ok(Array.from(s.idx).every((j, r) => Array.from({ length: C }, (_, c) => cb[j * C + c] === zh[r * C + c]).every(Boolean)),
    'z holds the code vectors of idx');
  const p = tidy(() => teacher.probs(tensor(labels, [labels.length]), s.z));
  const idx = p.idx!.toInt32Array();
  let inSupport = 0;
  for (let r = 0; r < labels.length * N; r++) if ([0, 1, 2].some((k) => idx[r * 3 + k] === s.idx[r])) inSupport++;
  t.equal(inSupport, labels.length * N, 'every sampled code is among the 3 codes probs() gives mass to');
  disposeProbs(p);
  s.z.dispose();
  teacher.dispose();
});

t.test('probsFromLogits: removed entries get 0, rows sum to 1, sparse rows sorted and padded', async (t) => {
  const l = Float32Array.from([0, 1, -Infinity, 2, 5, -Infinity, -Infinity, -Infinity]);
  const d = probsFromLogits(l, 2, 4, 0).dense!;
  t.equal(d[2], 0, 'filtered logit has probability 0');
  t.ok(Math.abs(d[0] + d[1] + d[3] - 1) < 1e-6 && d[4] === 1 && d[5] === 0, 'rows normalised');
  const s = probsFromLogits(l, 2, 4, 2);
  t.same([...s.idx!], [3, 1, 0, 1], 'top-2 indices, ties by index, padding after the single survivor');
  t.same([...s.val!].map((v) => Number(v.toFixed(4))), [0.7311, 0.2689, 1, 0], 'renormalised over the kept entries only');
});

t.test('TabularTeacher: table rows of the snapped prefix, ancestral samples follow the joint', async (t) => {
  const s = Math.SQRT1_2, Vt = 3;
  const codebook = Float32Array.from([s, s, -s, s, 0, -1]);
  const t0 = Float32Array.from([0.5, 0.3, 0.2]);
  const t1 = Float32Array.from([0.8, 0.1, 0.1, 0.1, 0.8, 0.1, 0.2, 0.2, 0.6]);
  const teacher = new TabularTeacher({ codebook, V: Vt, C: 2, N: 2, numClasses: 1, tables: [t0, t1] });
  const z = tensor(Float32Array.from([0.1, -0.9, 5, 5, -0.6, 0.8, 0, 0]), [2, 2, 2]);        // snaps to codes 2 and 1
  const p = tidy(() => teacher.probs(tensor(new Int32Array(2), [2]), z).dense!.toFloat32Array());
  t.same([...p].map((v) => Number(v.toFixed(2))), [0.5, 0.3, 0.2, 0.2, 0.2, 0.6, 0.5, 0.3, 0.2, 0.1, 0.8, 0.1], 'rows of t0 and t1');
  const S = 20000;
  const d = teacher.sample(new Int32Array(S), new Generator(9));
  const tv = totalVariation(jointHistogram(d.idx, 2, Vt), teacher.joint(0));
  t.ok(tv < 0.02, `TV(samples, exact joint) = ${tv.toFixed(4)} with ${S} samples`);
  t.throws(() => new TabularTeacher({ codebook, V: Vt, C: 2, N: 2, numClasses: 1, tables: [t0, t0] }), /table 1 has 3 values/);
  d.z.dispose();
  z.dispose();
  teacher.dispose();
});

t.test('no leaks', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'live tensors back to baseline');
});
