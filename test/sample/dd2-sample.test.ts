// DD2 sampling (lib/sample/dd2-sample.ts, dd2-samplers.ts, and the DD2 modes of `dd2 sample`): marginals
// estimation and sampling; nearest-code snapping; the continuous teacher's KV-cached decoding equals
// recomputing the prefix and its per-step logits equal one teacher-forced pass; the discrete GPT through the
// adapter reproduces sampleTokens; fewStep with k = 1 is oneStep, with k > 1 keeps the generator's first N−k+1
// tokens and regenerates the rest from the teacher's conditionals on the continuous prefix (Alg. 4);
// teacherParallel samples N−k tokens like the teacher and then all k from one pass over marginal draws;
// the ImageSampler factories; and the CLI modes (same bytes for the same seed).
// Letters: B images, R teacher rows, N tokens, C code dim, V codes, E width, K classes.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { embedding } from '../../lib/tensor/ops/index.js';
import { concat, slice } from '../../lib/tensor/ops/shape.js';
import { GPT, resolveGPTConfig } from '../../lib/models/gpt.js';
import { defaultVQConfig, VQModel } from '../../lib/models/vq.js';
import { ContinuousGPT, loadContinuousGPT, saveContinuousGPT } from '../../lib/models/continuous-gpt.js';
import { ARDiffusion, loadARDiffusion, saveARDiffusion } from '../../lib/models/ar-diffusion.js';
import { saveModel } from '../../lib/io/checkpoint.js';
import { readNpz } from '../../lib/io/npz.js';
import { processLogits, sampleTokens } from '../../lib/sample/ar-sample.js';
import { estimateMarginals, fewStep, loadMarginals, nearestCodes, oneStep, sampleMarginals, saveMarginals, snapToCodes,
  teacherAdapter, teacherParallel, teacherSample } from '../../lib/sample/dd2-sample.js';
import { codebookOf, fewStepSampler, marginalsSampler, oneStepSampler, teacherParallelSampler, teacherSampler }
  from '../../lib/sample/dd2-samplers.js';
import { makeSampleCommand } from '../../lib/cli/commands/sample.js';
import { expectClose, Rng } from '../harness/compare.js';

const base = memory();
const dir = mkdtempSync(join(tmpdir(), 'dd2-dd2sample-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const V = 16, C = 4, K = 3, N = 16, E = 32;
const gptCfg = resolveGPTConfig({ vocabSize: V, numClasses: K, gridH: 4, gridW: 4, dim: E, nLayer: 2, nHead: 2, multipleOf: 16,
  tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0 });

function randomize(m: GPT | ContinuousGPT | ARDiffusion, seed: number, prefix = '', std = 0.3): void {
  const rng = new Rng(seed);
  const st = new Map<string, Float32Array>();
  for (const [k, v] of m.stateDict()) {
    if (!k.startsWith(prefix)) { st.set(k, v); continue; }
    st.set(k, /norm\.weight|in_ln\.weight/.test(k) ? v.map(() => 1 + 0.2 * (rng.next() - 0.5)) : rng.normal(v.length, std));
  }
  m.loadStateDict(st);
}

// A tiny tokenizer (8x8 images, 4x4 tokens, 16 codes of dimension 4), teacher and generator, saved for the CLI.
const vq = tidy(() => new VQModel({ ...defaultVQConfig, imageSize: 8, downsample: 2, channels: 8, channelMult: [1, 1],
  zChannels: 8, codebookSize: V, codeDim: C, groups: 4 }, 3)).eval();
const vqPath = join(dir, 'vq.safetensors');
saveModel(vqPath, vq, { kind: 'vq', config: vq.cfg, step: 0 });
const codebook = codebookOf(vq);                                                   // (V, C)
const teacher = new ContinuousGPT({ gpt: gptCfg, codeDim: C, inputHidden: 16 }, new Generator(1));
randomize(teacher, 2);
teacher.eval();
const gen = ARDiffusion.fromTeacher(teacher, { width: 24, depth: 2, freqDim: 16 }, new Generator(3));
randomize(gen, 4, 'head.', 0.2);
gen.eval();
const teacherPath = join(dir, 'teacher-continuous.safetensors'), genPath = join(dir, 'generator.safetensors');
saveContinuousGPT(teacherPath, teacher, { step: 0, tokenizer: vqPath });
saveARDiffusion(genPath, gen, { step: 0, role: 'generator', tokenizer: vqPath });
const ad = teacherAdapter(teacher, codebook);

/** Teacher-forced raw logits (R, 1+n, V) over the continuous inputs x (B, n, C), rows duplicated for CFG. */
function forcedLogits(labels: Int32Array, x: Float32Array, n: number, guided: boolean): Float32Array {
  return noGrad(() => tidy(() => {
    const B = labels.length;
    const rows = guided ? Int32Array.from([...labels, ...labels.map(() => K)]) : labels;
    const xt = tensor(x, [B, n, C]);
    return teacher.forward(tensor(rows, [rows.length]), n > 0 ? (guided ? concat([xt, xt], 0) : xt) : null).toFloat32Array();
  }));
}
/** Rows (R, V) of position p from (R, T, V) logits. */
function at(all: Float32Array, R: number, T: number, p: number): Float32Array {
  const out = new Float32Array(R * V);
  for (let r = 0; r < R; r++) out.set(all.subarray((r * T + p) * V, (r * T + p + 1) * V), r * V);
  return out;
}
const codesOf = (tokens: Int32Array): Float32Array => noGrad(() => tidy(() =>
  embedding(codebook, tensor(tokens, [tokens.length])).toFloat32Array()));
function argmaxRows(x: Float32Array, rows: number): number[] {
  return Array.from({ length: rows }, (_, r) => { let b = 0; for (let v = 1; v < V; v++) if (x[r * V + v] > x[r * V + b]) b = v; return b; });
}

t.test('marginals: estimate, save/load, sample; nearest codes', async (t) => {
  const toks = Int32Array.from([0, 1, 2, 0, 1, 1, 3, 1, 2]);                        // S = 3 sequences of N = 3
  t.same([...estimateMarginals(toks, 3, 4)], [2 / 3, 0, 0, 1 / 3, 0, 1, 0, 0, 0, 1 / 3, 2 / 3, 0].map(Math.fround),
    'per-position frequencies (N, V)');
  t.throws(() => estimateMarginals(Int32Array.from([0, 5]), 2, 4), /token 5/);
  t.throws(() => estimateMarginals(Int32Array.from([0, 1, 2]), 2, 4), /whole number/);
  const table = new Float32Array(2 * 3);
  table.set([0.2, 0.5, 0.3, 0, 0, 1]);
  const p = join(dir, 'm.safetensors');
  saveMarginals(p, table, 2, 3);
  const r = loadMarginals(p);
  t.same([r.N, r.V, [...r.table]], [2, 3, [...table]], 'save/load round trip');
  const S = 4000, draws = sampleMarginals(table, 2, 3, S, new Generator(5));
  const freq = estimateMarginals(draws, 2, 3);
  const z = Math.max(...[...table].map((q, i) => (q > 0 && q < 1 ? Math.abs(freq[i] - q) / Math.sqrt((q * (1 - q)) / S) : (freq[i] === q ? 0 : Infinity))));
  t.ok(z < 5, `empirical marginals match the table (max |z| = ${z.toFixed(2)} over 4000 draws)`);
  t.throws(() => sampleMarginals(new Float32Array(6), 2, 3, 1, new Generator(0)), /no mass/);

  tidy(() => {
    const rng = new Rng(6), x = rng.normal(5 * C), cb = codebook.toFloat32Array();
    const got = [...nearestCodes(tensor(x, [5, C]), codebook).toInt32Array()];
    const want = Array.from({ length: 5 }, (_, i) => {
      let best = 0, bd = Infinity;
      for (let v = 0; v < V; v++) { let d = 0; for (let c = 0; c < C; c++) d += (x[i * C + c] - cb[v * C + c]) ** 2; if (d < bd) { bd = d; best = v; } }
      return best;
    });
    t.same(got, want, 'nearest codes by brute force');
    const s = snapToCodes(tensor(x, [1, 5, C]), codebook);
    t.same([...s.toFloat32Array()], [...codesOf(Int32Array.from(want))], 'snapToCodes replaces vectors by those codes');
  });
});

t.test('continuous teacher: cached = uncached, logits = teacher-forced pass; GPT adapter = sampleTokens', async (t) => {
  const labels = Int32Array.from([0, 2, 1]), B = 3, o = { cfg: 2, topK: 10, temperature: 0.9 };
  const logs: Float32Array[] = [];
  const cached = teacherSample(ad, labels, new Generator(11), { ...o, onLogits: (p, raw) => { logs[p] = raw; } });
  const uncached = teacherSample(ad, labels, new Generator(11), { ...o, cached: false });
  t.same([...cached], [...uncached], 'KV-cached decoding draws the same tokens as recomputing the prefix');
  t.ok(new Set(cached).size > 3, `varied tokens (${new Set(cached).size} distinct)`);
  t.same([...teacherSample(teacher, labels, new Generator(11), { ...o, codebook })], [...cached], 'a bare ContinuousGPT + o.codebook = its adapter');
  t.throws(() => teacherSample(teacher, labels, new Generator(11), o), /needs its codebook/);
  const prefix = new Int32Array(B * (N - 1));
  for (let b = 0; b < B; b++) prefix.set(cached.subarray(b * N, b * N + N - 1), b * (N - 1));
  const forced = forcedLogits(labels, codesOf(prefix), N - 1, true);                 // (2B, N, V)
  const steps = Float32Array.from(logs.flatMap((l) => [...l]));
  const want = Float32Array.from(Array.from({ length: N }, (_, p) => [...at(forced, 2 * B, N, p)]).flat());
  expectClose(t, 'every step\'s raw logits = one teacher-forced pass over the code vectors', steps, want, { atol: 1e-5, rtol: 1e-5 });

  const g = new GPT(gptCfg, new Generator(7));
  randomize(g, 8);
  g.eval();
  const a = sampleTokens(g, labels, new Generator(12), o);
  const b = teacherSample(teacherAdapter(g), labels, new Generator(12), o);
  t.same([...b], [...a], 'a discrete GPT through the adapter reproduces sampleTokens bit for bit');
  g.dispose();
});

t.test('oneStep and fewStep (Algorithm 4)', async (t) => {
  const labels = Int32Array.from([1, 0]), B = 2;
  const eps = tensor(new Rng(13).normal(B * N * C), [B, N, C]);
  const x1 = oneStep(gen, labels, eps), x1v = x1.toFloat32Array();
  x1.dispose();
  const want1 = noGrad(() => tidy(() => gen.generate(tensor(labels, [B]), eps).toFloat32Array()));
  t.same([...x1v], [...want1], 'oneStep = generate(labels, eps)');
  const f1 = fewStep(gen, ad, labels, 1, new Generator(0), { eps });
  t.same([...f1.toFloat32Array()], [...x1v], 'fewStep with k = 1 is oneStep');
  f1.dispose();

  const k = 4, P = N - k + 1, o = { cfg: 2, topK: 1 };                             // greedy: tokens are argmaxes
  const logs: Float32Array[] = [];
  const fk = fewStep(gen, ad, labels, k, new Generator(14), { ...o, eps, onLogits: (p, raw) => { logs[p] = raw; } });
  const xv = fk.toFloat32Array();
  fk.dispose();
  t.same(logs.map((_, p) => p).filter((p) => logs[p]), Array.from({ length: P + k - 1 }, (_, p) => p),
    `teacher logits reported for positions 0..${N - 1} (one prefix pass + ${k - 2} cached steps)`);
  let keep = true;
  for (let b = 0; b < B; b++) for (let i = 0; i < P * C; i++) keep &&= xv[b * N * C + i] === x1v[b * N * C + i];
  t.ok(keep, `tokens 0..${P - 1} are the generator's`);
  const forced = forcedLogits(labels, Float32Array.from(Array.from({ length: B }, (_, b) => [...xv.subarray(b * N * C, (b * N + N - 1) * C)]).flat()), N - 1, true);
  const cb = codebook.toFloat32Array();
  for (let p = P; p < N; p++) {
    const raw = at(forced, 2 * B, N, p);
    expectClose(t, `position ${p}: cached logits = teacher-forced pass over the final continuous prefix`, logs[p], raw, { atol: 1e-5, rtol: 1e-5 });
    const best = argmaxRows(processLogits(raw, B, V, o), B);
    for (let b = 0; b < B; b++) {
      t.same([...xv.subarray((b * N + p) * C, (b * N + p + 1) * C)], [...cb.subarray(best[b] * C, (best[b] + 1) * C)],
        `image ${b}, token ${p}: the code vector of the teacher's (greedy) choice`);
    }
  }
  t.throws(() => fewStep(gen, ad, labels, N + 1, new Generator(0)), /k must be an integer in \[1, 16\]/);
  const bare = fewStep(gen, teacher, labels, k, new Generator(14), { ...o, eps, codebook });
  t.same([...bare.toFloat32Array()], [...xv], 'fewStep with a bare ContinuousGPT + o.codebook = with its adapter');
  bare.dispose();
  eps.dispose();
});

t.test('teacherParallel: N−k teacher steps, then k tokens from one pass over marginal draws', async (t) => {
  const labels = Int32Array.from([2, 0]), B = 2;
  const table = new Float32Array(N * V);
  for (let i = 0; i < N; i++) table[i * V + ((3 * i + 1) % V)] = 1;                   // one-hot: known fills
  for (const k of [5, N]) {
    const S = N - k, o = { cfg: 1.5, topK: 1 };
    const logs: Float32Array[] = [];
    const tp = teacherParallel(ad, labels, k, table, new Generator(21), { ...o, onLogits: (p, raw) => { logs[p] = raw; } });
    const seq = teacherSample(ad, labels, new Generator(21), o);
    let same = true;
    for (let b = 0; b < B; b++) for (let i = 0; i < S; i++) same &&= tp[b * N + i] === seq[b * N + i];
    t.ok(same, S > 0 ? `k = ${k}: tokens 0..${S - 1} as the sequential teacher draws them` : `k = N: no sequential step`);
    const inputs = new Int32Array(B * (N - 1));
    for (let b = 0; b < B; b++) for (let i = 0; i < N - 1; i++) inputs[b * (N - 1) + i] = i < S ? seq[b * N + i] : (3 * i + 1) % V;
    const forced = forcedLogits(labels, codesOf(inputs), N - 1, true);
    let ok = true, worst = 0;
    for (let p = S; p < N; p++) {
      const raw = at(forced, 2 * B, N, p);
      for (let i = 0; i < raw.length; i++) worst = Math.max(worst, Math.abs(raw[i] - logs[p][i]));
      const best = argmaxRows(processLogits(raw, B, V, o), B);
      for (let b = 0; b < B; b++) ok &&= tp[b * N + p] === best[b];
    }
    t.ok(worst < 1e-5, `k = ${k}: the parallel pass's logits = teacher-forced over [teacher tokens, marginal draws] (max |diff| ${worst.toExponential(2)})`);
    t.ok(ok, `k = ${k}: tokens ${S}..${N - 1} resampled from those conditionals (greedy check)`);
  }
  t.throws(() => teacherParallel(ad, labels, 0, table, new Generator(0)), /k must be an integer/);
  t.throws(() => teacherParallel(ad, labels, 2, new Float32Array(5), new Generator(0)), /marginals table has 5 values/);
});

t.test('ImageSampler factories', async (t) => {
  const labels = Int32Array.from([0, 1, 2]);
  const fresh = (): { g: ARDiffusion; te: ContinuousGPT; v: VQModel } => ({
    g: loadARDiffusion(genPath).model, te: loadContinuousGPT(teacherPath).model,
    v: tidy(() => new VQModel({ ...vq.cfg }, 3)).eval(),
  });
  const m1 = fresh();
  m1.te.dispose();
  const one = oneStepSampler(m1.g, m1.v);
  t.same([one.name, one.steps, one.numClasses, one.channels, one.size, one.noiseShape], ['dd2-1step', 1, K, 1, 8, [N, C]], 'one-step sampler facts');
  tidy(() => {
    const z = one.generate(labels, 5), z2 = one.generate(labels, 5);
    t.same([z.dtype, z.shape], ['float32', [3, N, C]], 'continuous latents (B, N, C)');
    t.same([...z.toFloat32Array()], [...z2.toFloat32Array()], 'deterministic in the seed');
    const noise = new Generator(5).normal([3, N, C]);
    t.same([...one.generateFromNoise!(labels, noise).toFloat32Array()], [...z.toFloat32Array()], 'generate(seed) = generateFromNoise(N(0, I) from that seed)');
    const img = one.decode(z);
    t.same(img.shape, [3, 1, 8, 8], 'decoded images (B, ch, S, S)');
    t.ok(img.toFloat32Array().every((v) => v >= -1 && v <= 1), 'in [-1, 1]');
  });
  one.dispose();
  t.ok(m1.g.disposed, 'dispose() frees the generator');

  const m2 = fresh();
  const few = fewStepSampler(m2.g, m2.te, m2.v, 3, { cfg: 2 });
  t.same([few.name, few.steps], ['dd2-fewstep-3', 3]);
  tidy(() => t.same(few.decode(few.generate(labels, 1)).shape, [3, 1, 8, 8], 'few-step images'));
  few.dispose();

  const m3 = fresh();
  m3.g.dispose();
  const table = estimateMarginals(teacherSample(ad, Int32Array.from([0, 1, 2, 0]), new Generator(2), {}), N, V);
  const tpar = teacherParallelSampler(m3.te, m3.v, 4, table, {});
  t.same([tpar.name, tpar.steps], ['teacher-parallel-4', N - 3]);
  tidy(() => {
    const z = tpar.generate(labels, 3);
    t.same([z.dtype, z.shape], ['int32', [3, N]], 'index latents (B, N)');
    t.same(tpar.decode(z).shape, [3, 1, 8, 8]);
  });
  tpar.dispose();
  const m4 = fresh();
  m4.g.dispose();
  const teach = teacherSampler(m4.te, m4.v, { cfg: 2 });
  t.same([teach.name, teach.steps], ['teacher-continuous', N]);
  tidy(() => t.same([...teach.generate(labels, 9).toInt32Array()], [...teacherSample(ad, labels, new Generator(9), { cfg: 2 })], 'teacher sampler = teacherSample'));
  teach.dispose();
  const mv = tidy(() => new VQModel({ ...vq.cfg }, 3)).eval();
  const marg = marginalsSampler(table, mv, K);
  t.same([marg.name, marg.steps], ['marginals', 0]);
  tidy(() => t.same(marg.generate(labels, 4).shape, [3, N]));
  marg.dispose();
});

/** Runs `dd2 sample` with argv, capturing stdout. */
async function cli(args: string[]): Promise<string> {
  const program = new Command('dd2').exitOverride().addCommand(makeSampleCommand());
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'dd2', 'sample', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

t.test('CLI: dd2 sample --generator / --few-step / --baseline', async (t) => {
  const table = estimateMarginals(teacherSample(ad, Int32Array.from([0, 1, 2, 0, 1, 2]), new Generator(3), { cfg: 2 }), N, V);
  saveMarginals(join(dir, 'marginals.safetensors'), table, N, V);
  const run = async (name: string, args: string[]): Promise<{ out: string; summary: Record<string, unknown> }> => {
    const out = join(dir, name);
    const summary = JSON.parse(await cli([...args, '--n', '5', '--batch-size', '2', '--seed', '3', '--out', out, '--json']));
    return { out, summary };
  };
  const a = await run('one-a', ['--generator', genPath, '--per-image']);
  const b = await run('one-b', ['--generator', genPath, '--per-image']);
  for (const f of ['grid.png', 'samples.npz', '00004-class1.png']) {
    t.ok(readFileSync(join(a.out, f)).equals(readFileSync(join(b.out, f))), `one-step ${f}: same bytes for the same seed`);
  }
  t.same([a.summary.mode, a.summary.steps], ['dd2-1step', 1], 'summary names the mode');
  const npz = readNpz(join(a.out, 'samples.npz'));
  t.same([npz.latents.dtype, npz.latents.shape, [...npz.labels.data], npz.images.shape], ['float32', [5, N, C], [0, 1, 2, 0, 1], [5, 8, 8, 1]],
    'samples.npz: continuous latents, labels, images');
  const want = noGrad(() => tidy(() => oneStep(gen, Int32Array.from([0, 1]), new Generator(3 * 65536).normal([2, N, C], gen.device)).toFloat32Array()));
  t.same([...(npz.latents.data as Float32Array).subarray(0, 2 * N * C)], [...want], 'batch 0 = oneStep with noise from seed·65536');
  const manifest = JSON.parse(readFileSync(join(a.out, 'samples.json'), 'utf8'));
  t.same([manifest.kind, manifest.mode, manifest.tokenizer], ['dd2-samples', 'dd2-1step', vqPath], 'samples.json records the run');

  const few = await run('few', ['--generator', genPath, '--few-step', '3', '--cfg', '2', '--top-k', '8']);
  t.same([few.summary.mode, few.summary.steps], ['dd2-fewstep-3', 3], 'few-step (teacher found next to the generator)');
  const mg = await run('marg', ['--baseline', 'marginals', '--model', teacherPath]);
  const mnpz = readNpz(join(mg.out, 'samples.npz'));
  t.same([mg.summary.mode, mnpz.tokens.dtype, mnpz.tokens.shape], ['marginals', 'int32', [5, N]], 'marginals baseline writes tokens');
  const tp = await run('tpar', ['--baseline', 'teacher-parallel:4', '--model', teacherPath, '--cfg', '2']);
  t.same([tp.summary.mode, tp.summary.steps], ['teacher-parallel-4', N - 3], 'teacher-parallel baseline');

  await t.rejects(cli(['--few-step', '3', '--model', teacherPath]), /--few-step: needs --generator/);
  await t.rejects(cli(['--baseline', 'sometimes', '--model', teacherPath]), /--baseline: expected 'marginals' or 'teacher-parallel:k'/);
  await t.rejects(cli(['--baseline', 'teacher-parallel:40', '--model', teacherPath]), /exceeds the 16 tokens/);
  await t.rejects(cli(['--generator', join(dir, 'nope.safetensors')]), /--generator: .* does not exist/);
});

t.test('no leaked tensors', async (t) => {
  codebook.dispose();
  teacher.dispose();
  gen.dispose();
  vq.dispose();
  const now = memory();
  t.equal(now.tensors, base.tensors, `live tensors ${now.tensors} == ${base.tensors} at start`);
});
