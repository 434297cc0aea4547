// The continuous-input teacher (lib/models/continuous-gpt.ts): state-dict names (LlamaGen's at top level
// plus tok_mlp.{0,2}); fromGPT copies every GPT weight; with tok_mlp solved so that tok_mlp(c_j) = emb(j)
// (a linear system for the second layer on generic SiLU features; exact up to float32 rounding) the
// continuous model reproduces the GPT's logits on any token sequence; features are causal; the KV-cached
// pass equals the full pass; a model without head refuses logits; save/load round trip.
// Letters: B batch, n inputs, N tokens, C code dim, H tok_mlp hidden, E width, V codebook size.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { embedding } from '../../lib/tensor/ops/index.js';
import { concat, slice } from '../../lib/tensor/ops/shape.js';
import { GPT, resolveGPTConfig, type GPTConfig } from '../../lib/models/gpt.js';
import { ContinuousGPT, loadContinuousGPT, saveContinuousGPT } from '../../lib/models/continuous-gpt.js';
import { expectClose, Rng } from '../harness/compare.js';

const base = memory();
const dir = mkdtempSync(join(tmpdir(), 'dd2-cgpt-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const V = 16, C = 4, H = 64, K = 5;
const gptCfg = (over: Partial<GPTConfig> = {}): GPTConfig => resolveGPTConfig({
  vocabSize: V, numClasses: K, gridH: 3, gridW: 3, dim: 32, nLayer: 2, nHead: 2, multipleOf: 16,
  tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0, ...over,
});

/** Every parameter ~ N(0, std²) (norm weights near 1), so that the output head is not zero. */
function randomize(m: GPT | ContinuousGPT, seed: number, std = 0.3): void {
  const rng = new Rng(seed);
  const st = new Map<string, Float32Array>();
  for (const [k, v] of m.stateDict()) st.set(k, k.endsWith('norm.weight') ? v.map(() => 1 + 0.2 * (rng.next() - 0.5)) : rng.normal(v.length, std));
  m.loadStateDict(st);
}

/** Solves A X = Y (A n×n, Y n×m) by Gaussian elimination with partial pivoting, float64. */
function solve(A: Float64Array, Y: Float64Array, n: number, m: number): Float64Array {
  const a = Float64Array.from(A), y = Float64Array.from(Y);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    for (let j = 0; j < n; j++) [a[c * n + j], a[p * n + j]] = [a[p * n + j], a[c * n + j]];
    for (let j = 0; j < m; j++) [y[c * m + j], y[p * m + j]] = [y[p * m + j], y[c * m + j]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r * n + c] / a[c * n + c];
      for (let j = 0; j < n; j++) a[r * n + j] -= f * a[c * n + j];
      for (let j = 0; j < m; j++) y[r * m + j] -= f * y[c * m + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < m; j++) y[r * m + j] /= a[r * n + r];
  return y;
}

/**
 * Sets tok_mlp's second layer so that tok_mlp(c_j) = emb_j for all V codes: with hidden features
 * h_j = [SiLU(W1 c_j + b1), 1] (V × (H+1), generic rank V for V <= H+1), the minimum-norm solution of
 * h [W2ᵀ; b2ᵀ] = emb is hᵀ (h hᵀ)⁻¹ emb.
 */
function fitTokMLP(m: ContinuousGPT, codes: Float32Array, emb: Float32Array): void {
  const sd = m.stateDict();
  const W1 = sd.get('tok_mlp.0.weight')!, b1 = sd.get('tok_mlp.0.bias')!, E = m.cfg.gpt.dim, D = H + 1;
  const h = new Float64Array(V * D);
  for (let j = 0; j < V; j++) {
    for (let i = 0; i < H; i++) {
      let s = b1[i];
      for (let c = 0; c < C; c++) s += W1[i * C + c] * codes[j * C + c];
      h[j * D + i] = s / (1 + Math.exp(-s));
    }
    h[j * D + H] = 1;
  }
  const hhT = new Float64Array(V * V);
  for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) { let s = 0; for (let i = 0; i < D; i++) s += h[a * D + i] * h[b * D + i]; hhT[a * V + b] = s; }
  const z = solve(hhT, Float64Array.from(emb), V, E);                             // (V, E)
  const W2 = new Float32Array(E * H), b2 = new Float32Array(E);
  for (let e = 0; e < E; e++) {
    for (let i = 0; i <= H; i++) {
      let s = 0;
      for (let j = 0; j < V; j++) s += h[j * D + i] * z[j * E + e];
      if (i < H) W2[e * H + i] = s; else b2[e] = s;
    }
  }
  sd.set('tok_mlp.2.weight', W2);
  sd.set('tok_mlp.2.bias', b2);
  m.loadStateDict(sd);
}

t.test('fromGPT: names, copied weights; with tok_mlp(c_j) = emb(j) the logits equal the GPT\'s', async (t) => {
  const gpt = new GPT(gptCfg(), new Generator(1));
  randomize(gpt, 2);
  gpt.eval();
  const m = ContinuousGPT.fromGPT(gpt, C, H, new Generator(3));
  t.notOk(m.training, 'fromGPT keeps the GPT\'s mode');
  const names = [...m.stateShapes().keys()];
  t.same(names.slice(0, 5), ['cls_embedding.embedding_table.weight', 'tok_mlp.0.weight', 'tok_mlp.0.bias', 'tok_mlp.2.weight', 'tok_mlp.2.bias'],
    'class table, then tok_mlp.{0,2} where tok_embeddings was');
  t.equal(names[names.length - 1], 'output.weight', 'output head last, as LlamaGen');
  t.notOk(names.includes('tok_embeddings.weight'), 'no token table');
  const gs = gpt.stateDict(), ms = m.stateDict();
  t.ok([...gs].filter(([k]) => k !== 'tok_embeddings.weight').every(([k, v]) => ms.get(k)!.every((x, i) => x === v[i])),
    'every other weight copied bit for bit');
  t.same(m.stateShapes().get('tok_mlp.0.weight'), [H, C], 'tok_mlp.0: C -> hidden');
  t.same(m.stateShapes().get('tok_mlp.2.weight'), [32, H], 'tok_mlp.2: hidden -> E');

  const rng = new Rng(4);
  const codes = rng.normal(V * C);
  fitTokMLP(m, codes, gs.get('tok_embeddings.weight')!);
  const B = 3, n = 8;
  const labels = Int32Array.from([0, 4, 2]), toks = rng.ints(B * n, V);
  tidy(() => {
    const lab = tensor(labels, [B]);
    const fit = m.embedInputs(embedding(tensor(codes, [V, C]), tensor(Int32Array.from({ length: V }, (_, j) => j), [1, V])));
    // Measured max |err| 7.5e-6 (float32 rounding of the solved second layer).
    expectClose(t, 'tok_mlp(c_j) = emb(j) after the fit', fit.toFloat32Array(), gs.get('tok_embeddings.weight')!, { atol: 3e-5, rtol: 0 });
    const want = gpt.forward(lab, tensor(toks, [B, n])).toFloat32Array();       // (B, 1+n, V)
    const x = embedding(tensor(codes, [V, C]), tensor(toks, [B, n]));         // (B, n, C)
    const got = m.forward(lab, x);
    t.same(got.shape, [B, 1 + n, V], 'logits (B, 1+n, V)');
    // Measured max |diff| 7.3e-5 on logits of size ~10-30 (the 7.5e-6 embedding misfit through 2 layers).
    expectClose(t, 'continuous logits = GPT logits on the code vectors', got.toFloat32Array(), want, { atol: 2e-4, rtol: 2e-4 });
    const f0 = m.forward(lab, null);
    expectClose(t, 'class token only', f0.toFloat32Array(), gpt.forward(lab, null).toFloat32Array(), { atol: 1e-6, rtol: 1e-6 });
  });
  gpt.dispose();
  m.dispose();
});

t.test('causal features; KV-cached pass = full pass; headless model; save/load', async (t) => {
  const m = new ContinuousGPT({ gpt: gptCfg(), codeDim: C, inputHidden: H }, new Generator(5));
  randomize(m, 6);
  m.eval();
  const rng = new Rng(7);
  const B = 2, n = 8, E = 32;
  const x = rng.normal(B * n * C), labels = Int32Array.from([1, 3]);
  tidy(() => {
    const lab = tensor(labels, [B]);
    const f = m.features(lab, tensor(x, [B, n, C])).toFloat32Array();             // (B, 1+n, E)
    const k = 4;
    const x2 = Float32Array.from(x);
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) x2[(b * n + k) * C + c] += 1;
    const f2 = m.features(lab, tensor(x2, [B, n, C])).toFloat32Array();
    const rowDiff = (r: number): number => {
      let d = 0;
      for (let b = 0; b < B; b++) for (let e = 0; e < E; e++) d = Math.max(d, Math.abs(f[(b * (1 + n) + r) * E + e] - f2[(b * (1 + n) + r) * E + e]));
      return d;
    };
    t.ok(Array.from({ length: k + 1 }, (_, r) => rowDiff(r)).every((d) => d === 0), `rows 0..${k} do not see input ${k}`);
    t.ok(Array.from({ length: n - k }, (_, r) => rowDiff(k + 1 + r)).every((d) => d > 1e-4), `rows ${k + 1}..${n} do`);

    // Cached: class token, then inputs in chunks of 3, 1, 4 rows.
    const cache = m.createCache(B);
    const xt = tensor(x, [B, n, C]);
    const parts = [m.run(m.embed(lab, null), { start: 0, cache })];
    let at = 0;
    for (const len of [3, 1, 4]) {
      parts.push(m.run(m.embedInputs(slice(xt, 1, at, at + len)), { start: 1 + at, cache }));
      at += len;
    }
    expectClose(t, 'KV-cached features = full pass', concat(parts, 1).toFloat32Array(), f, { atol: 1e-5, rtol: 1e-4 });
    cache.dispose();
  });
  t.throws(() => tidy(() => m.features(tensor(labels, [B]), tensor(rng.normal(B * 10 * C), [B, 10, C]))), /exceed/,
    'more than N inputs (1 + N positions) are refused');
  t.throws(() => tidy(() => m.forward(tensor(labels, [B]), tensor(rng.normal(B * 2 * 3), [B, 2, 3]))), /must be float32 \(B, n, 4\)/);

  const headless = new ContinuousGPT({ gpt: gptCfg(), codeDim: C, inputHidden: H }, new Generator(5), { head: false }).eval();
  t.notOk([...headless.stateShapes().keys()].includes('output.weight'), 'head: false registers no output head');
  t.throws(() => tidy(() => headless.forward(tensor(labels, [B]), null)), /no output head/);
  headless.dispose();

  const path = join(dir, 'cgpt.safetensors');
  saveContinuousGPT(path, m, { step: 12, tokenizer: '/some/vq.safetensors' });
  const { model: r, meta } = loadContinuousGPT(path);
  t.same([meta.kind, meta.step, meta.tokenizer], ['continuous-gpt', 12, '/some/vq.safetensors'], 'meta round trip');
  t.same(r.cfg, m.cfg, 'config round trip');
  t.notOk(r.training, 'loaded in eval mode');
  noGrad(() => tidy(() => {
    const lab = tensor(labels, [B]), xt = tensor(x, [B, n, C]);
    t.same([...r.forward(lab, xt).toFloat32Array()], [...m.forward(lab, xt).toFloat32Array()], 'same logits after the round trip');
  }));
  r.dispose();
  m.dispose();
});

t.test('no leaked tensors', async (t) => {
  const now = memory();
  t.equal(now.tensors, base.tensors, `live tensors ${now.tensors} == ${base.tensors} at start`);
});
