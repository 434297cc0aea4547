// The LlamaGen-style GPT (lib/models/gpt.ts) and its 2D RoPE (lib/models/rope.ts): parameter names and
// shapes as in LlamaGen's state dict, LlamaGen's GPT-B/L parameter totals, initialisation, the RoPE table
// against a literal float64 port of precompute_freqs_cis_2d, relative-position invariance of q·k, the class
// position rule, causality of the forward pass, class dropout, and a save/load round trip.
// Letters: B batch, T positions, D head dim, V vocabulary, E width.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { GPT, GPT_SIZES, gptConfig, gptStateShapes, loadGPT, resolveGPTConfig, swigluHidden, type GPTConfig }
  from '../../lib/models/gpt.js';
import { Rope2D, ropeAngles } from '../../lib/models/rope.js';
import { saveModel } from '../../lib/io/checkpoint.js';
import { expectClose, Rng } from '../harness/compare.js';

const base = memory();

const smallCfg = (over: Partial<GPTConfig> = {}): GPTConfig => resolveGPTConfig({
  vocabSize: 64, numClasses: 10, gridH: 4, gridW: 4, dim: 64, nLayer: 2, nHead: 4, multipleOf: 32, ...over,
});

/** Replaces every parameter by N(0, std²) values (a trained-looking model; LlamaGen zero-inits the head). */
function randomize(m: GPT, seed: number, std = 0.3): void {
  const rng = new Rng(seed);
  const st = new Map<string, Float32Array>();
  for (const [k, v] of m.stateDict()) st.set(k, k.endsWith('norm.weight') ? v.map(() => 1 + 0.2 * (rng.next() - 0.5)) : rng.normal(v.length, std));
  m.loadStateDict(st);
}

t.test('parameter names and shapes follow LlamaGen gpt.py', async (t) => {
  const cfg = smallCfg();
  t.equal(swigluHidden(cfg), 192, 'F = find_multiple(int(2*4*64/3) = 170, 32) = 192');
  const want: [string, number[]][] = [
    ['cls_embedding.embedding_table.weight', [11, 64]], ['tok_embeddings.weight', [64, 64]],
  ];
  for (const i of [0, 1]) {
    want.push([`layers.${i}.attention.wqkv.weight`, [192, 64]], [`layers.${i}.attention.wo.weight`, [64, 64]],
      [`layers.${i}.feed_forward.w1.weight`, [192, 64]], [`layers.${i}.feed_forward.w3.weight`, [192, 64]],
      [`layers.${i}.feed_forward.w2.weight`, [64, 192]], [`layers.${i}.attention_norm.weight`, [64]],
      [`layers.${i}.ffn_norm.weight`, [64]]);
  }
  want.push(['norm.weight', [64]], ['output.weight', [64, 64]]);
  const m = new GPT(cfg, new Generator(3));
  t.same([...m.stateShapes()], want, 'state dict keys, order and shapes as PyTorch lists them for LlamaGen');
  t.same(gptStateShapes(cfg), want, 'gptStateShapes agrees');
  t.same([...m.stateDict().keys()].filter((k) => k.includes('rope')), [], 'RoPE tables are not saved (as in LlamaGen)');
  const noNull = new GPT(smallCfg({ classDropoutProb: 0 }), new Generator(3));
  t.same(noNull.cls_embedding.embedding_table.weight.shape, [10, 64], 'no null-class row without class dropout (use_cfg_embedding)');
  noNull.dispose();

  // Initialisation (LlamaGen initialize_weights): N(0, 0.02²) linears/embeddings, zero head, unit norms.
  const sd = m.stateDict();
  const std = (a: Float32Array): number => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  t.ok(sd.get('output.weight')!.every((v) => v === 0), 'output head starts at zero');
  t.ok(sd.get('norm.weight')!.every((v) => v === 1), 'RMSNorm weights start at one');
  for (const k of ['layers.0.attention.wqkv.weight', 'layers.1.feed_forward.w2.weight', 'tok_embeddings.weight']) {
    const s = std(sd.get(k)!);
    t.ok(Math.abs(s - 0.02) < 0.002, `${k} std ${s.toFixed(4)} ~ 0.02`);
  }
  m.dispose();

  // LlamaGen's sizes (c2i, V = 16384, 1000 classes, 16x16 tokens): the totals its gpt.py comments give.
  const total = (size: string): number => gptStateShapes(gptConfig(size, { vocabSize: 16384, numClasses: 1000, gridH: 16, gridW: 16 }))
    .reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
  t.equal(total('GPT-B'), 110_888_448, 'GPT-B: 111M parameters');
  t.equal(total('GPT-L'), 342_910_976, 'GPT-L: 343M parameters');
  t.same([GPT_SIZES['GPT-B'].nLayer, GPT_SIZES['GPT-B'].dim, GPT_SIZES['GPT-B'].nHead], [12, 768, 12], 'GPT-B shape');
  t.same([GPT_SIZES['GPT-L'].nLayer, GPT_SIZES['GPT-L'].dim, GPT_SIZES['GPT-L'].nHead], [24, 1024, 16], 'GPT-L shape');
  t.equal(swigluHidden({ dim: 1024, multipleOf: 256, ffnDimMultiplier: null }), 2816, 'GPT-L SwiGLU width 2816');
  t.throws(() => smallCfg({ nHead: 3 }), RangeError, 'width not divisible by heads');
  t.throws(() => smallCfg({ dim: 24, nHead: 4 }), RangeError, 'head dim 6 is not a multiple of 4');
  t.throws(() => gptConfig('huge', { vocabSize: 8, numClasses: 2, gridH: 2, gridW: 2 }), RangeError, 'unknown size');
});

t.test('2D RoPE table equals a literal port of LlamaGen precompute_freqs_cis_2d', async (t) => {
  // LlamaGen, square grid gs, head dim D, one class token: freqs over half_dim = D/2 with step 2.
  const gs = 5, D = 16, halfDim = D / 2;
  const freqs: number[] = [];
  for (let a = 0; a < halfDim; a += 2) freqs.push(1 / 10000 ** (a / halfDim));
  const want: number[] = new Array(D / 2 * 2).fill(0);          // class row: zeros (cos 0, sin 0)
  for (let r = 0; r < gs; r++) {
    for (let c = 0; c < gs; c++) {
      const grid = [...freqs.map((f) => r * f), ...freqs.map((f) => c * f)];   // concat(freqs[row], freqs[col])
      for (const th of grid) want.push(Math.cos(th), Math.sin(th));
    }
  }
  const { cos, sin, T } = ropeAngles(gs, gs, D);
  t.equal(T, 1 + gs * gs);
  const got: number[] = [];
  for (let i = 0; i < T * halfDim; i++) got.push(cos[i], sin[i]);
  expectClose(t, 'cos/sin table', got, want, { atol: 1e-14, rtol: 0 });

  // apply() against apply_rotary_emb's complex product in float64 on random x (B, H, T, D).
  const rng = new Rng(11);
  const B = 2, H = 3, x = rng.uniform(B * H * T * D);
  const rope = new Rope2D(gs, gs, D);
  const out = tidy(() => rope.apply(tensor(x, [B, H, T, D])).toFloat32Array());
  const ref = new Float64Array(x.length);
  for (let row = 0; row < B * H * T; row++) {
    const p = row % T;
    for (let i = 0; i < halfDim; i++) {
      const x0 = x[row * D + 2 * i], x1 = x[row * D + 2 * i + 1];
      const c = cos[p * halfDim + i], s = sin[p * halfDim + i];
      ref[row * D + 2 * i] = x0 * c - x1 * s;
      ref[row * D + 2 * i + 1] = x1 * c + x0 * s;
    }
  }
  // Measured maxAbs 9.2e-8 (float32 products of |x| <= 1 and their sum, a few roundings).
  expectClose(t, 'rotated x vs float64 complex product', out, ref, { atol: 5e-7, rtol: 0 });
  const r5 = tidy(() => rope.apply(tensor(x.subarray(0, 3 * D), [1, 1, 3, D]), 5).toFloat32Array());
  expectClose(t, 'positions 5..7 through start=5', r5, Array.from({ length: 3 * D }, (_, i) => {
    const p = 5 + Math.floor(i / D), j = i % D, k = j >> 1, c = cos[p * halfDim + k], s = sin[p * halfDim + k];
    return j % 2 === 0 ? x[i] * c - x[i + 1] * s : x[i] * c + x[i - 1] * s;
  }), { atol: 5e-7, rtol: 0 });
  t.ok(cos.subarray(0, halfDim).every((v) => v === 0) && out.subarray(0, D).every((v) => v === 0),
    "class position: LlamaGen's zero rows zero q and k");
  rope.dispose();
  const id = new Rope2D(gs, gs, D, { prefixMode: 'identity' });
  const outId = tidy(() => id.apply(tensor(x, [B, H, T, D])).toFloat32Array());
  t.same(outId.subarray(0, D), x.subarray(0, D), "class position with 'identity': unchanged");
  id.dispose();
  t.throws(() => ropeAngles(4, 4, 6), RangeError, 'head dim must be a multiple of 4');
});

t.test('RoPE: q·k depends only on the relative grid offset', async (t) => {
  const gh = 5, gw = 6, D = 16, T = 1 + gh * gw;
  const rng = new Rng(5);
  const q = rng.normal(D), k = rng.normal(D);
  const rope = new Rope2D(gh, gw, D, { prefixMode: 'identity' });
  const rep = (v: Float32Array): Float32Array => { const a = new Float32Array(T * D); for (let p = 0; p < T; p++) a.set(v, p * D); return a; };
  const [rq, rk] = tidy(() => [rope.apply(tensor(rep(q), [T, D])).toFloat32Array(), rope.apply(tensor(rep(k), [T, D])).toFloat32Array()]);
  rope.dispose();
  const dot = (i: number, j: number): number => { let s = 0; for (let d = 0; d < D; d++) s += rq[i * D + d] * rk[j * D + d]; return s; };
  const byOffset = new Map<string, number[]>();
  for (let i = 1; i < T; i++) {
    for (let j = 1; j < T; j++) {
      const ri = Math.floor((i - 1) / gw), ci = (i - 1) % gw, rj = Math.floor((j - 1) / gw), cj = (j - 1) % gw;
      const key = `${ri - rj},${ci - cj}`;
      if (!byOffset.has(key)) byOffset.set(key, []);
      byOffset.get(key)!.push(dot(i, j));
    }
  }
  let spread = 0;
  for (const v of byOffset.values()) spread = Math.max(spread, Math.max(...v) - Math.min(...v));
  const firsts = [...byOffset.values()].map((v) => v[0]);
  const range = Math.max(...firsts) - Math.min(...firsts);
  // Measured spread 8.1e-7 (float32 rotations, |q|, |k| ~ 4) against a range of 5.2 across offsets.
  t.ok(spread < 1e-5, `same offset, same q·k: max spread ${spread.toExponential(2)} over ${byOffset.size} offsets`);
  t.ok(range > 1, `different offsets give different q·k (range ${range.toFixed(2)}): the test can fail`);
  let plain = 0;
  for (let d = 0; d < D; d++) plain += q[d] * k[d];
  t.ok(Math.abs(byOffset.get('0,0')![0] - plain) < 1e-5, 'offset (0,0) gives the unrotated q·k');
});

t.test('forward: shapes, causality, class dropout, save/load', async (t) => {
  const cfg = smallCfg({ gridH: 3, gridW: 4 });
  const m = new GPT(cfg, new Generator(9));
  randomize(m, 2);
  m.eval();
  const rng = new Rng(8);
  const B = 3, N = 12, V = cfg.vocabSize;
  const toks = rng.ints(B * N, V), labs = Int32Array.from([1, 4, 9]);
  const run = (tk: Int32Array): Float32Array => noGrad(() => tidy(() =>
    m.logitsForImages(tensor(labs, [B]), tensor(tk, [B, N])).toFloat32Array()));
  const a = run(toks);
  t.equal(a.length, B * N * V, 'logits (B, N, V)');
  const j = 6, changed = toks.slice();
  for (let b = 0; b < B; b++) changed[b * N + j] = (toks[b * N + j] + 1) % V;
  const c = run(changed);
  let before = 0, after = 0;
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < N; p++) {
      for (let v = 0; v < V; v++) {
        const d = Math.abs(a[(b * N + p) * V + v] - c[(b * N + p) * V + v]);
        if (p <= j) before = Math.max(before, d); else after = Math.max(after, d);
      }
    }
  }
  t.equal(before, 0, `token ${j} does not reach logits 0..${j} (they predict tokens up to ${j})`);
  t.ok(after > 1e-3, `it changes the later logits (max change ${after.toFixed(3)})`);

  // Class dropout (LabelEmbedder.token_drop): in training each label becomes the null class with p.
  const drop = new GPT(smallCfg({ classDropoutProb: 0.5 }), new Generator(1));
  const n = 2000, lab = tensor(new Int32Array(n).fill(3), [n]);
  const nullRow = drop.cls_embedding.embedding_table.weight.toFloat32Array().subarray(10 * 64, 11 * 64);
  const e = tidy(() => drop.cls_embedding.forward(lab, new Generator(4)).toFloat32Array());
  let dropped = 0;
  for (let i = 0; i < n; i++) if (e.subarray(i * 64, (i + 1) * 64).every((v, d) => v === nullRow[d])) dropped++;
  t.ok(Math.abs(dropped / n - 0.5) < 0.045, `dropped fraction ${(dropped / n).toFixed(3)} ~ 0.5 (4 sigma 0.045)`);
  t.throws(() => tidy(() => drop.cls_embedding.forward(lab)), /needs a generator/, 'training without a generator throws');
  drop.eval();
  const ev = tidy(() => drop.cls_embedding.forward(lab, new Generator(4)).toFloat32Array());
  t.ok(ev.subarray(0, 64).every((v, d) => v !== nullRow[d]), 'eval mode keeps the labels');
  lab.dispose();
  drop.dispose();

  const dir = mkdtempSync(join(tmpdir(), 'dd2-gpt-'));
  try {
    const path = join(dir, 'gpt.safetensors');
    saveModel(path, m, { kind: 'gpt', config: m.cfg, step: 7 });
    const back = loadGPT(path);
    t.same(back.cfg, m.cfg, 'config restored from the checkpoint meta');
    t.equal(back.training, false, 'loaded in eval mode');
    const b2 = noGrad(() => tidy(() => back.logitsForImages(tensor(labs, [B]), tensor(toks, [B, N])).toFloat32Array()));
    t.same(b2, a, 'same logits after save and load');
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  m.dispose();
});

t.test('no leaks', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, base.cpu.bytes, 'native bytes back to baseline');
});
