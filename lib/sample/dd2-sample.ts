// Sampling with the DD2 networks and the baselines they are compared with (METHOD §3, §7 Alg. 4):
// - oneStep: the one-step generator, x = ε − v(ε, 1, f(ε_<i)) on a Gaussian noise sequence ε (B, N, C);
// - fewStep (Alg. 4): one generator pass, then the continuous teacher regenerates the last k−1 tokens one by
//   one, conditioned on the generator's (continuous) prefix through its KV cache: k model passes in all;
// - teacherSample: the AR teacher token by token (N passes), fed code vectors when it is the continuous one;
// - teacherParallel ('teacher with fewer steps'): N−k sequential teacher steps, then the last k tokens in ONE
//   pass: fill them with draws from the per-position marginals, run the teacher over them, resample all k from
//   their conditionals (N−k+1 passes);
// - sampleMarginals: every position drawn independently from the per-position token marginals.
// Teacher sampling follows lib/sample/ar-sample.ts exactly: CFG on a doubled batch (conditional rows, then the
// null class; both halves fed the same token), temperature, top-k, top-p, one seeded categorical per row.
// Everything is seeded by lib/tensor/random.ts Generators and runs under noGrad/tidy.
// Letters: B images, R = B or 2B teacher rows, N tokens per image, C code dim, V codebook size, k tokens
// regenerated or sampled in parallel, P prefix length.
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import { mulScalar, square, sub } from '../tensor/ops/elementwise.js';
import { argmax, sum } from '../tensor/ops/reduce.js';
import { matmul } from '../tensor/ops/matmul.js';
import { embedding } from '../tensor/ops/index.js';
import { concat, contiguous, reshape, slice } from '../tensor/ops/shape.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { GPT, type KVCache } from '../models/gpt.js';
import { ContinuousGPT } from '../models/continuous-gpt.js';
import type { ARDiffusion } from '../models/ar-diffusion.js';
import { processLogits, softmaxWeights, type SampleOptions } from './ar-sample.js';

/** Teacher sampling settings (ar-sample.ts: cfg, temperature, topK, topP, cached, onStep, onLogits), plus the
 *  codebook (V, C) when a bare ContinuousGPT is passed as the teacher. */
export type TeacherSampleOptions = SampleOptions & { codebook?: Tensor };

/** A teacher as given to the sampling functions: an adapter, a discrete GPT, or a ContinuousGPT (+ o.codebook). */
export type AnyTeacher = TeacherAdapter | GPT | ContinuousGPT;

// ---------------------------------------------------------------------------------------------------------
// Marginals

/** Per-position token frequencies: tokens int32 (S×N) row-major → (N×V) row-stochastic table. */
export function estimateMarginals(tokens: Int32Array, N: number, V: number): Float32Array {
  if (!(Number.isInteger(N) && N > 0 && Number.isInteger(V) && V > 0)) throw new RangeError(`dd2: estimateMarginals: N ${N} and V ${V} must be positive integers`);
  if (tokens.length === 0 || tokens.length % N !== 0) {
    throw new RangeError(`dd2: estimateMarginals: ${tokens.length} tokens are not a whole number (>= 1) of sequences of ${N}`);
  }
  const S = tokens.length / N;
  const counts = new Float64Array(N * V);
  for (let s = 0; s < S; s++) {
    for (let i = 0; i < N; i++) {
      const v = tokens[s * N + i];
      if (!(v >= 0 && v < V)) throw new RangeError(`dd2: estimateMarginals: token ${v} (sequence ${s}, position ${i}) outside [0, ${V})`);
      counts[i * V + v]++;
    }
  }
  return Float32Array.from(counts, (c) => c / S);
}

/** Writes a (N, V) marginals table as safetensors (one F32 tensor 'marginals'). */
export function saveMarginals(path: string, table: Float32Array, N: number, V: number): void {
  if (table.length !== N * V) throw new RangeError(`dd2: saveMarginals: ${table.length} values are not ${N} x ${V}`);
  writeSafetensors(path, new Map([['marginals', { dtype: 'F32' as const, shape: [N, V], data: table }]]), { kind: 'dd2-marginals' });
}

/** Reads what saveMarginals wrote: the (N, V) table. */
export function loadMarginals(path: string): { table: Float32Array; N: number; V: number } {
  const a = readSafetensors(path).arrays.get('marginals');
  if (!a || a.dtype !== 'F32' || a.shape.length !== 2) {
    throw new Error(`dd2: loadMarginals: ${path} has no F32 (N, V) tensor 'marginals'`);
  }
  return { table: a.data as Float32Array, N: a.shape[0], V: a.shape[1] };
}

function checkMarginals(table: Float32Array, N: number, V: number, where: string): void {
  if (table.length !== N * V) throw new RangeError(`dd2: ${where}: the marginals table has ${table.length} values, not N x V = ${N} x ${V}`);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let v = 0; v < V; v++) {
      const p = table[i * V + v];
      if (!(p >= 0)) throw new RangeError(`dd2: ${where}: marginal (${i}, ${v}) = ${p} is not a probability`);
      s += p;
    }
    if (!(s > 0)) throw new RangeError(`dd2: ${where}: position ${i} of the marginals has no mass`);
  }
}

/** Rows `pos` of the marginals repeated for B images → draws int32 (B, |pos|) (one categorical per cell). */
function drawFromMarginals(table: Float32Array, V: number, pos: number[], B: number, gen: Generator,
  device?: Tensor['device']): Int32Array {
  const w = new Float32Array(B * pos.length * V);
  for (let b = 0; b < B; b++) pos.forEach((p, j) => w.set(table.subarray(p * V, (p + 1) * V), (b * pos.length + j) * V));
  return tidy(() => gen.categorical(tensor(w, [B * pos.length, V], { device })).toInt32Array());
}

/** Independent-marginals baseline: tokens int32 (B·N), each position drawn from its own marginal. */
export function sampleMarginals(table: Float32Array, N: number, V: number, B: number, gen: Generator,
  device?: Tensor['device']): Int32Array {
  checkMarginals(table, N, V, 'sampleMarginals');
  return drawFromMarginals(table, V, Array.from({ length: N }, (_, i) => i), B, gen, device);
}

// ---------------------------------------------------------------------------------------------------------
// Codebook helpers

/** Nearest code (Euclidean) of each vector: x (..., C), codebook (V, C) → int32 (...). */
export function nearestCodes(x: Tensor, codebook: Tensor): Tensor {
  return noGrad(() => tidy(() => {
    const C = codebook.shape[1];
    const flat = reshape(x, [-1, C]);
    // argmin |x − c|² = argmax (x·c − |c|²/2)
    const score = sub(matmul(flat, codebook, { transB: true }), mulScalar(reshape(sum(square(codebook), -1), [1, -1]), 0.5));
    return reshape(argmax(score, -1), x.shape.slice(0, -1));
  }));
}

/** x (B, N, C) with every vector replaced by its nearest code. */
export function snapToCodes(x: Tensor, codebook: Tensor): Tensor {
  return noGrad(() => tidy(() => embedding(codebook, nearestCodes(x, codebook))));
}

// ---------------------------------------------------------------------------------------------------------
// One step

function labelTensor(labels: Int32Array | Tensor, device: Tensor['device']): Tensor {
  return labels instanceof Tensor ? labels : tensor(labels, [labels.length], { device });
}

/**
 * The one-step generator: labels (B) → continuous tokens (B, N, C). eps (B, N, C) is the noise (drawn from
 * rng, default Generator(0), when absent). Runs without gradient and in eval mode (restored after).
 */
export function oneStep(model: ARDiffusion, labels: Int32Array | Tensor, eps?: Tensor, rng?: Generator): Tensor {
  const B = labels instanceof Tensor ? labels.size : labels.length, N = model.seqLen, C = model.tokenDim;
  if (eps && (eps.rank !== 3 || eps.shape[0] !== B || eps.shape[1] !== N || eps.shape[2] !== C)) {
    throw new RangeError(`dd2: oneStep: noise ${eps.describe()} must be (${B}, ${N}, ${C})`);
  }
  const was = model.training;
  model.eval();
  try {
    return noGrad(() => tidy(() => {
      const e = eps ?? (rng ?? new Generator(0)).normal([B, N, C], model.device);
      return model.generate(labelTensor(labels, model.device), e);
    }));
  } finally {
    model.train(was);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Teachers

/** An AR teacher as the samplers see it: the discrete GPT or the continuous one (fed code vectors). */
export interface TeacherAdapter {
  readonly seqLen: number;
  readonly vocabSize: number;
  readonly numClasses: number;
  readonly hasNullClass: boolean;
  readonly device: Tensor['device'];
  /** null for a discrete GPT; (V, C) for a continuous teacher */
  readonly codebook: Tensor | null;
  /** class rows (R, 1, E) */
  embedClass(labels: Tensor): Tensor;
  /** token rows (R, T, E) from indices int32 (R, T) */
  embedTokens(idx: Tensor): Tensor;
  /** token rows (R, T, E) from continuous vectors (R, T, C) (continuous teacher only) */
  embedVectors(x: Tensor): Tensor;
  /** layers + head over rows h (R, T, E) at positions start.. through the cache → logits (R, T, V) */
  logits(h: Tensor, start: number, cache: KVCache): Tensor;
  createCache(R: number): KVCache;
  setEval(): () => void;
}

/** Wraps a GPT (token embeddings) or a ContinuousGPT with its codebook (V, C) (inputs c_j = codebook[j]). */
export function teacherAdapter(model: GPT | ContinuousGPT, codebook?: Tensor): TeacherAdapter {
  const evalMode = (): (() => void) => { const was = model.training; model.eval(); return () => { model.train(was); }; };
  if (model instanceof GPT) {
    const c = model.cfg;
    return {
      seqLen: model.seqLen, vocabSize: c.vocabSize, numClasses: c.numClasses, hasNullClass: c.classDropoutProb > 0,
      device: model.device, codebook: null,
      embedClass: (l) => model.embed(l, null),
      embedTokens: (idx) => model.embedTokens(idx),
      embedVectors: () => { throw new Error('dd2: sample: a discrete GPT teacher cannot read continuous tokens; use the continuous teacher'); },
      logits: (h, start, cache) => model.output.forward(model.features(h, { start, cache })),
      createCache: (R) => model.createCache(R),
      setEval: evalMode,
    };
  }
  const c = model.cfg.gpt;
  if (!codebook || codebook.rank !== 2 || codebook.shape[0] !== c.vocabSize || codebook.shape[1] !== model.cfg.codeDim) {
    throw new RangeError(`dd2: sample: the continuous teacher needs its codebook (${c.vocabSize}, ${model.cfg.codeDim}), got ${codebook?.describe() ?? 'none'}`);
  }
  return {
    seqLen: model.seqLen, vocabSize: c.vocabSize, numClasses: c.numClasses, hasNullClass: c.classDropoutProb > 0,
    device: model.device, codebook,
    embedClass: (l) => model.embed(l, null),
    embedTokens: (idx) => model.embedInputs(embedding(codebook, idx)),
    embedVectors: (x) => model.embedInputs(x),
    logits: (h, start, cache) => model.logits(model.run(h, { start, cache })),
    createCache: (R) => model.createCache(R),
    setEval: evalMode,
  };
}

function asAdapter(t: AnyTeacher, codebook?: Tensor): TeacherAdapter {
  return t instanceof GPT || t instanceof ContinuousGPT ? teacherAdapter(t, codebook) : t;
}

/** One decoding session: R rows (with CFG: B conditional then B null-class rows), a KV cache, positions fed. */
class TeacherRun {
  readonly B: number;
  readonly R: number;
  readonly V: number;
  readonly N: number;
  fed = 0;
  private readonly cache: KVCache;
  private readonly lab: Tensor;

  constructor(readonly t: TeacherAdapter, labels: Int32Array, readonly o: TeacherSampleOptions) {
    const B = labels.length, K = t.numClasses, cfg = o.cfg ?? 1;
    if (!Number.isFinite(cfg)) throw new RangeError(`dd2: sample: cfg must be finite, got ${cfg}`);
    for (const l of labels) if (!(Number.isInteger(l) && l >= 0 && l < K)) throw new RangeError(`dd2: sample: class ${l} outside [0, ${K})`);
    const guided = cfg !== 1;
    if (guided && !t.hasNullClass) throw new Error('dd2: sample: the teacher was built without a null class (classDropoutProb 0); use cfg 1');
    this.B = B; this.R = guided ? 2 * B : B; this.V = t.vocabSize; this.N = t.seqLen;
    const rows = new Int32Array(this.R);
    rows.set(labels);
    if (guided) rows.fill(K, B);
    this.lab = keep(tensor(rows, [this.R], { device: t.device }));
    this.cache = t.createCache(this.R);
  }

  /** (B, ...) → (R, ...): the rows repeated for the null-class half. */
  private rows(x: Tensor): Tensor {
    return this.R === this.B ? x : concat([x, x], 0);
  }

  classRows(): Tensor { return this.t.embedClass(this.lab); }
  tokenRows(idx: Int32Array, T: number): Tensor { return this.rows(this.t.embedTokens(tensor(idx, [this.B, T], { device: this.t.device }))); }
  vectorRows(x: Tensor): Tensor { return this.t.embedVectors(this.rows(contiguous(x))); }

  /** Feeds h (R, T, E) at the next T positions → processed logits (B·T, V) (CFG, temperature, top-k/p), row b·T + j. */
  feed(h: Tensor): Float32Array {
    const T = h.shape[1], { B, R, V } = this;
    const raw = this.t.logits(h, this.fed, this.cache).toFloat32Array();         // (R, T, V)
    this.fed += T;
    const out = new Float32Array(B * T * V), one = new Float32Array(R * V);
    for (let j = 0; j < T; j++) {
      for (let r = 0; r < R; r++) one.set(raw.subarray((r * T + j) * V, (r * T + j + 1) * V), r * V);
      this.o.onLogits?.(this.fed - T + j, one.slice());
      const p = processLogits(one, B, V, this.o);                                  // (B, V)
      for (let b = 0; b < B; b++) out.set(p.subarray(b * V, (b + 1) * V), (b * T + j) * V);
    }
    return out;
  }

  /** One categorical draw per row of processed logits (rows, V) → int32 (rows). */
  draw(processed: Float32Array, gen: Generator): Int32Array {
    const rows = processed.length / this.V;
    return gen.categorical(tensor(softmaxWeights(processed, rows, this.V), [rows, this.V], { device: this.t.device })).toInt32Array();
  }

  dispose(): void {
    this.lab.dispose();
    this.cache.dispose();
  }
}

/** Runs fn on a teacher session in eval mode without gradient; frees everything after. */
function withRun<T>(t: TeacherAdapter, labels: Int32Array, o: TeacherSampleOptions, fn: (run: TeacherRun) => T): T {
  const restore = t.setEval();
  const run = new TeacherRun(t, labels, o);
  try {
    return noGrad(() => fn(run));
  } finally {
    run.dispose();
    restore();
  }
}

/** Samples tokens first..upTo−1 one by one, given the processed logits `last` that predict token `first`
 *  (the run has been fed positions 0..first); each sampled token but the last is fed at the next position.
 *  Writes into tokens (B, N). */
function sequential(run: TeacherRun, tokens: Int32Array, first: number, last: Float32Array, gen: Generator, upTo: number): void {
  const { B, N } = run;
  let p = last;
  for (let pos = first; pos < upTo; pos++) {
    const next = tidy(() => run.draw(p, gen));
    for (let b = 0; b < B; b++) tokens[b * N + pos] = next[b];
    run.o.onStep?.(pos, N);
    if (pos + 1 < upTo) {
      p = tidy(() => run.feed(run.tokenRows(next, 1)));
    }
  }
}

/**
 * The AR teacher, token by token (N passes): labels (B) → tokens int32 (B·N). A continuous teacher is fed the
 * code vectors of its sampled tokens. With o.cached false every step recomputes the whole prefix (the reference
 * the cache is tested against; onLogits then sees every position of each recomputed pass).
 */
export function teacherSample(anyTeacher: AnyTeacher, labels: Int32Array, gen: Generator, o: TeacherSampleOptions = {}): Int32Array {
  const teacher = asAdapter(anyTeacher, o.codebook);
  const N = teacher.seqLen, B = labels.length;
  const tokens = new Int32Array(B * N);
  if (o.cached === false) {
    for (let pos = 0; pos < N; pos++) {
      // A fresh session per step: class + tokens 0..pos−1 in one pass, the last row predicts token pos.
      const next = withRun(teacher, labels, o, (run) => tidy(() => {
        const prefix = new Int32Array(B * pos);
        for (let b = 0; b < B; b++) prefix.set(tokens.subarray(b * N, b * N + pos), b * pos);
        const h = pos > 0 ? concat([run.classRows(), run.tokenRows(prefix, pos)], 1) : run.classRows();
        const all = run.feed(h);                                                     // (B·(1+pos), V)
        const V = run.V, last = new Float32Array(B * V);
        for (let b = 0; b < B; b++) last.set(all.subarray((b * (pos + 1) + pos) * V, (b * (pos + 1) + pos + 1) * V), b * V);
        return run.draw(last, gen);
      }));
      for (let b = 0; b < B; b++) tokens[b * N + pos] = next[b];
      o.onStep?.(pos, N);
    }
    return tokens;
  }
  return withRun(teacher, labels, o, (run) => {
    const first = tidy(() => run.feed(run.classRows()));
    sequential(run, tokens, 0, first, gen, N);
    return tokens;
  });
}

/**
 * 'Teacher with fewer steps' (N−k+1 passes): tokens 0..N−k−1 sampled one by one, then tokens N−k..N−1 filled
 * with draws from the per-position marginals (N×V), one teacher pass over them, and all k resampled from
 * their conditionals p(x_j | x_<j) in that pass. labels (B) → tokens int32 (B·N).
 */
export function teacherParallel(anyTeacher: AnyTeacher, labels: Int32Array, k: number, marginals: Float32Array, gen: Generator,
  o: TeacherSampleOptions = {}): Int32Array {
  const teacher = asAdapter(anyTeacher, o.codebook);
  const N = teacher.seqLen, V = teacher.vocabSize, B = labels.length;
  if (!(Number.isInteger(k) && k >= 1 && k <= N)) throw new RangeError(`dd2: teacherParallel: k must be an integer in [1, ${N}], got ${k}`);
  checkMarginals(marginals, N, V, 'teacherParallel');
  const tokens = new Int32Array(B * N);
  const S = N - k;                                                                    // sequential steps
  return withRun(teacher, labels, o, (run) => {
    if (S > 0) sequential(run, tokens, 0, tidy(() => run.feed(run.classRows())), gen, S);   // tokens 0..S−1, positions 0..S−1 fed
    const fill = drawFromMarginals(marginals, V, Array.from({ length: k }, (_, j) => S + j), B, gen, teacher.device);
    for (let b = 0; b < B; b++) for (let j = 0; j < k; j++) tokens[b * N + S + j] = fill[b * k + j];
    // One pass over positions S..N−1, row j predicting token S + j: the class (S = 0 only) and tokens
    // N−T−1 .. N−2 (T of them: token S−1 just sampled, then the marginal draws).
    const processed = tidy(() => {
      const T = S === 0 ? k - 1 : k;
      const idx = new Int32Array(B * T);
      for (let b = 0; b < B; b++) idx.set(tokens.subarray(b * N + N - T - 1, b * N + N - 1), b * T);
      const tok = T > 0 ? run.tokenRows(idx, T) : null;
      const h = S > 0 ? tok! : tok ? concat([run.classRows(), tok], 1) : run.classRows();
      return run.feed(h);                                                            // (B·k, V)
    });
    const re = tidy(() => run.draw(processed, gen));                                 // (B·k)
    for (let b = 0; b < B; b++) for (let j = 0; j < k; j++) tokens[b * N + S + j] = re[b * k + j];
    o.onStep?.(N - 1, N);
    return tokens;
  });
}

/**
 * Algorithm 4 (k passes): one generator pass, then the continuous teacher regenerates tokens N−k+1 .. N−1 one by
 * one; token j is sampled from p(· | x_<j) with x the generator's continuous prefix (optionally snapped to the
 * nearest codes) followed by the code vectors of the tokens already regenerated. Returns (B, N, C): the
 * generator's tokens 0..N−k and code vectors after that. k = 1 is oneStep.
 */
export function fewStep(model: ARDiffusion, anyTeacher: TeacherAdapter | ContinuousGPT, labels: Int32Array, k: number, gen: Generator,
  o: TeacherSampleOptions & { eps?: Tensor; snap?: boolean } = {}): Tensor {
  const teacher = asAdapter(anyTeacher, o.codebook);
  const N = model.seqLen, B = labels.length;
  if (!(Number.isInteger(k) && k >= 1 && k <= N)) throw new RangeError(`dd2: fewStep: k must be an integer in [1, ${N}], got ${k}`);
  if (teacher.seqLen !== N || !teacher.codebook || teacher.codebook.shape[1] !== model.tokenDim) {
    throw new RangeError(`dd2: fewStep: the teacher must be a continuous teacher over ${N} tokens of dimension ${model.tokenDim}`);
  }
  const codebook = teacher.codebook;
  const eps = o.eps ?? gen.normal([B, N, model.tokenDim], model.device);
  let x = oneStep(model, labels, eps);
  if (!o.eps) eps.dispose();
  if (o.snap) { const s = snapToCodes(x, codebook); x.dispose(); x = s; }
  if (k === 1) return x;
  const P = N - k + 1;                                                                // generator tokens kept
  const tokens = new Int32Array(B * N);
  withRun(teacher, labels, o, (run) => {
    const first = tidy(() => run.feed(concat([run.classRows(), run.vectorRows(slice(x, 1, 0, P))], 1)));   // (B·(P+1), V)
    const V = run.V, last = new Float32Array(B * V);
    for (let b = 0; b < B; b++) last.set(first.subarray((b * (P + 1) + P) * V, (b * (P + 1) + P + 1) * V), b * V);
    sequential(run, tokens, P, last, gen, N);
  });
  return noGrad(() => tidy(() => {
    const regen = new Int32Array(B * (k - 1));
    for (let b = 0; b < B; b++) regen.set(tokens.subarray(b * N + P, (b + 1) * N), b * (k - 1));
    const c = embedding(codebook, tensor(regen, [B, k - 1], { device: model.device }));   // (B, k−1, C)
    const out = concat([slice(x, 1, 0, P), c], 1);
    x.dispose();
    return out;
  }));
}
