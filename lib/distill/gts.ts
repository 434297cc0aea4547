// Stage 1 of DD2 (METHOD §5.2): AR-diffusion tuning with the ground-truth-score (GTS) loss. ψ0 (the teacher's
// backbone plus a fresh MLP head) regresses the exact conditional velocity of the teacher on teacher samples:
// per batch of teacher sequences z with labels y, P = teacher.probs(y, z) (one teacher-forced pass),
// f = ψ.features(y, z), and for m independent draws per token t ~ U[tMin, tMax], ε ~ N(0, I):
//   x = (1 − t)·z + t·ε,  v* = (x − D_Φ(x, t; P))/t,  loss = mean (v_ψ(x, t, f) − v*)²
// (mean over draws, tokens and the C coordinates, MAR's convention). Head-only steps (backbone features
// computed without gradient) come first, then full-model steps. The data are a pool of teacher samples
// generated up front with the teacher's sampling settings and stored in the stage folder (pool.safetensors:
// indices (S, N) and labels (S)), so a resumed stage reads the same pool. Checkpoints resume exactly.
// Letters: B batch, N tokens per image, C code dim, E width, V codebook size, S pool size, m draws.
import { existsSync } from 'node:fs';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator, type GeneratorState } from '../tensor/random.js';
import { addScalar, mul, neg, square, sub, add } from '../tensor/ops/elementwise.js';
import { mean } from '../tensor/ops/reduce.js';
import { concat, reshape } from '../tensor/ops/shape.js';
import { embedding } from '../tensor/ops/index.js';
import { condVelocity } from '../tensor/ops/cond-score.js';
import { AdamW } from '../nn/optim.js';
import { lossStep } from '../nn/loss-step.js';
import { restoreTrainingState, type RunDir } from '../io/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { Progress } from '../io/progress.js';
import { Batcher, type BatcherState } from '../data/dataset.js';
import { arDiffusionMeta, type ARDiffusion } from '../models/ar-diffusion.js';
import { disposeProbs, repeatProbs, type ScoreTeacher } from './teacher.js';
import { uniformT, warmupLr } from './schedule.js';
import type { StageHooks } from './adapt.js';

export interface GtsOptions {
  /** teacher sequences generated up front (the training data) and the batch they are sampled in */
  poolSize: number;
  poolBatch: number;
  /** > 0: the pool is drawn through the flow map with this many Euler intervals per token and keeps its noise
   * (the (noise, sequence) pairs of the regression warm start); 0: categorical draws, no noise kept */
  poolFlowSteps: number;
  /** steps with the backbone frozen, then steps of the whole model */
  headSteps: number;
  fullSteps: number;
  batchSize: number;
  /** m: noise draws per token and step */
  draws: number;
  lr: number;
  /** linear LR warm-up (steps, from 0) at the start of each phase */
  warmup: number;
  betas: [number, number];
  clip: number;
  /** the time interval of the draws */
  tMin: number;
  tMax: number;
  seed: number;
  ckptEvery: number;
  logEvery: number;
}

// Step counts sized for MNIST on 2 CPU cores: with the regression warm start the generator no longer starts from
// ψ0, which stays the guidance network's initialisation; 100 + 300 steps gave the measured stage-2 figures of
// NOTES.md ("Regression warm start"). The flow-map pool (32 Euler steps: the tabular teacher's joint within
// 0.015 TV of exact on 20,000 sequences, 16 steps 0.022) costs ~4x a categorical one on the CPU.
export const defaultGtsOptions: GtsOptions = {
  poolSize: 4096, poolBatch: 256, poolFlowSteps: 32, headSteps: 100, fullSteps: 300, batchSize: 16, draws: 4, lr: 3e-4, warmup: 20,
  betas: [0.9, 0.95], clip: 1.0, tMin: 1e-3, tMax: 1 - 1e-3, seed: 0, ckptEvery: 100, logEvery: 10,
};

/** Teacher samples: indices (S·N) row-major (S, N) and labels (S); for a flow-map pool also the noise
 * eps (S·N·C) row-major (S, N, C) each sequence was mapped from. */
export interface SamplePool { idx: Int32Array; labels: Int32Array; S: number; N: number; eps?: Float32Array; C?: number }

/** Reads a pool written by ensurePool. */
export function readPool(path: string): SamplePool {
  const { arrays } = readSafetensors(path);
  const idx = arrays.get('idx'), labels = arrays.get('labels');
  if (!idx || !labels || idx.dtype !== 'I32' || labels.dtype !== 'I32' || idx.shape.length !== 2 || labels.shape[0] !== idx.shape[0]) {
    throw new Error(`dd2: ${path} is not a teacher-sample pool (int32 'idx' (S, N) and 'labels' (S))`);
  }
  const eps = arrays.get('eps');
  if (eps && (eps.dtype !== 'F32' || eps.shape.length !== 3 || eps.shape[0] !== idx.shape[0] || eps.shape[1] !== idx.shape[1])) {
    throw new Error(`dd2: ${path}: 'eps' must be float32 (S, N, C) like 'idx' (${idx.shape}), got ${eps.dtype} (${eps.shape})`);
  }
  return { idx: idx.data as Int32Array, labels: labels.data as Int32Array, S: idx.shape[0], N: idx.shape[1],
    ...(eps ? { eps: eps.data as Float32Array, C: eps.shape[2] } : {}) };
}

/**
 * The stage's pool of teacher samples: read from `path` if it exists (and has the expected size), else
 * generated (labels 0, 1, .., numClasses−1 repeating; the teacher's sampling settings) and written there.
 * flowSteps > 0 draws every sequence through the flow map from stored noise (pool.eps); 0 draws categorically.
 */
export function ensurePool(path: string, teacher: ScoreTeacher, size: number, batch: number, seed: number,
  onBatch?: (done: number, total: number) => void, flowSteps = 0): SamplePool {
  if (existsSync(path)) {
    const p = readPool(path);
    if (p.S !== size || p.N !== teacher.seqLen) {
      throw new Error(`dd2: ${path} holds ${p.S} sequences of ${p.N} tokens, the stage wants ${size} of ${teacher.seqLen}; ` +
        'delete it or keep the pool options of the run');
    }
    return p;
  }
  const N = teacher.seqLen, C = teacher.codeDim, idx = new Int32Array(size * N), labels = new Int32Array(size);
  const eps = flowSteps > 0 ? new Float32Array(size * N * C) : undefined;
  for (let i = 0; i < size; i++) labels[i] = i % teacher.numClasses;
  const gen = new Generator(seed);
  for (let s = 0; s < size; s += batch) {
    const lab = Int32Array.from(labels.subarray(s, Math.min(size, s + batch)));
    const e = eps ? gen.normal([lab.length, N, C], teacher.codebook.device) : undefined;
    try {
      const r = teacher.sample(lab, gen, e ? { eps: e, steps: flowSteps } : undefined);
      r.z.dispose();
      idx.set(r.idx, s * N);
      if (e) eps!.set(e.toFloat32Array(), s * N * C);
    } finally {
      e?.dispose();
    }
    onBatch?.(Math.min(size, s + batch), size);
  }
  const arrays = new Map<string, { dtype: 'I32' | 'F32'; shape: number[]; data: Int32Array | Float32Array }>([
    ['idx', { dtype: 'I32', shape: [size, N], data: idx }], ['labels', { dtype: 'I32', shape: [size], data: labels }],
  ]);
  if (eps) arrays.set('eps', { dtype: 'F32', shape: [size, N, C], data: eps });
  writeSafetensors(path, arrays, { __dd2__: JSON.stringify({ kind: 'teacher-samples', seed, flowSteps }) });
  return { idx, labels, S: size, N, ...(eps ? { eps, C } : {}) };
}

/** Rows of the pool as tensors: labels (B) and z = codebook[idx] (B, N, C). */
export function poolBatch(pool: SamplePool, rows: Int32Array, codebook: Tensor): { labels: Tensor; z: Tensor } {
  const N = pool.N, B = rows.length, C = codebook.shape[1], device = codebook.device;
  const idx = new Int32Array(B * N), lab = new Int32Array(B);
  rows.forEach((r, b) => { idx.set(pool.idx.subarray(r * N, (r + 1) * N), b * N); lab[b] = pool.labels[r]; });
  return noGrad(() => tidy(() => ({
    labels: tensor(lab, [B], { device }),
    z: reshape(embedding(codebook, tensor(idx, [B * N], { device })), [B, N, C]),
  })));
}

/** x = (1 − t)·z + t·ε for t (B, N) and z, ε (B, N, C). */
export function noisy(z: Tensor, t: Tensor, eps: Tensor): Tensor {
  const [B, N] = t.shape, t3 = reshape(t, [B, N, 1]);
  return add(mul(addScalar(neg(t3), 1), z), mul(t3, eps));
}

/** m stacked copies along axis 0. */
export function repeat0(x: Tensor, m: number): Tensor {
  return m === 1 ? x : concat(Array.from({ length: m }, () => x), 0);
}

/**
 * The GTS loss of one batch (graph recorded when ψ's parameters need it): returns the scalar loss tensor.
 * With frozenBackbone the features are computed without gradient.
 */
export function gtsLoss(psi: ARDiffusion, teacher: ScoreTeacher, labels: Tensor, z: Tensor, m: number, gen: Generator,
  tMin: number, tMax: number, frozenBackbone: boolean): Tensor {
  const [B, N, C] = z.shape, device = z.device;
  const P = teacher.probs(labels, z);                                              // B·N rows
  try {
    const f = frozenBackbone ? noGrad(() => psi.features(labels, z)) : psi.features(labels, z);   // (B, N, E)
    const t = uniformT(gen, [m * B, N], tMin, tMax, device);                       // (mB, N)
    const eps = gen.normal([m * B, N, C], device);
    const x = noisy(repeat0(z, m), t, eps);                                         // (mB, N, C)
    const target = noGrad(() => {
      const Pm = repeatProbs(P, m);
      const v = condVelocity(reshape(x, [m * B * N, C]), reshape(t, [m * B * N]), teacher.codebook, Pm);
      if (m > 1) disposeProbs(Pm);
      return v;
    });
    const v = psi.velocity(x, t, repeat0(f, m));
    return mean(square(sub(reshape(v, [m * B * N, C]), target)));
  } finally {
    disposeProbs(P);
  }
}

export interface GtsResult {
  finished: boolean;
  model: ARDiffusion;
  pool: SamplePool;
  step: number;
  loss: number;
  /** seconds per step of each phase (means over this call's steps), and for the pool */
  secondsPerHeadStep: number;
  secondsPerFullStep: number;
  poolSeconds: number;
  seconds: number;
}

interface Saved { rng?: GeneratorState; batcher?: BatcherState; extra?: { loss?: number } }

/**
 * Runs (or resumes) stage 1 in `run` (the stage's folder), training `psi` in place (ψ0 built by the caller
 * with ARDiffusion.fromTeacher). Returns ψ in eval mode with the pool of teacher samples.
 */
export function runGTS(run: RunDir, teacher: ScoreTeacher, psi: ARDiffusion, o: GtsOptions, hooks: StageHooks = {}): GtsResult {
  const t0 = performance.now();
  if (psi.seqLen !== teacher.seqLen || psi.tokenDim !== teacher.codeDim) {
    throw new RangeError(`dd2: gts: the AR-diffusion model (${psi.seqLen} tokens of dim ${psi.tokenDim}) does not match ` +
      `the teacher (${teacher.seqLen} of dim ${teacher.codeDim})`);
  }
  const tp = performance.now();
  const poolProgress = new Progress(o.poolSize, 'gts teacher samples', { json: hooks.json, stream: hooks.progressStream });
  const pool = ensurePool(run.path('pool.safetensors'), teacher, o.poolSize, o.poolBatch, o.seed + 1,
    (d) => poolProgress.tick(d - poolProgress.value), o.poolFlowSteps ?? 0);
  poolProgress.done();
  const poolSeconds = (performance.now() - tp) / 1000;
  const total = o.headSteps + o.fullSteps;
  const opt = new AdamW(psi.parameters(), { lr: o.lr, betas: o.betas, weightDecay: 0 });
  let rng = new Generator(o.seed);
  let batcher = new Batcher(pool.S, o.batchSize, { seed: o.seed, shuffle: true, dropLast: pool.S >= o.batchSize });
  let step = 0, loss = NaN;
  const times = { head: [0, 0], full: [0, 0] };
  try {
    const prev = run.loadTrainingState('gts');
    if (prev) {
      restoreTrainingState(prev, { module: psi, optimizer: opt });
      const s = prev as unknown as Saved;
      step = prev.step;
      if (s.rng) rng = Generator.fromState(s.rng);
      if (s.batcher) batcher = Batcher.fromState(pool.S, o.batchSize, s.batcher, { shuffle: true, dropLast: batcher.dropLast });
      loss = s.extra?.loss ?? NaN;
      run.log({ event: 'resume', step });
    } else {
      run.log({ event: 'start', params: psi.numParameters(), pool: pool.S, poolSeconds });
    }
    const save = (): void => {
      run.saveTrainingState('gts', { module: psi, optimizer: opt, step, rng: rng.state(), batcher: batcher.state(),
        meta: arDiffusionMeta(psi, { step, role: 'ar-diffusion' }), extra: { loss } });
    };
    const headLr = warmupLr(0, o.lr, Math.min(o.warmup, o.headSteps));
    const fullLr = warmupLr(0, o.lr, Math.min(o.warmup, o.fullSteps));
    const progress = new Progress(total, 'gts', { json: hooks.json, stream: hooks.progressStream });
    progress.tick(step);
    psi.train();
    const last = Math.min(total, step + (hooks.stopAfter ?? Infinity));
    while (step < last) {
      const ts = performance.now();
      const headOnly = step < o.headSteps;
      opt.setLr(headOnly ? headLr(step + 1) : fullLr(step - o.headSteps + 1));
      const r = lossStep(opt, psi.parameters(), o.clip, () => {
        const { labels, z } = poolBatch(pool, batcher.next(), teacher.codebook);
        return gtsLoss(psi, teacher, labels, z, o.draws, rng, o.tMin, o.tMax, headOnly);
      });
      const gradNorm = r.gradNorm;
      loss = r.loss;
      step++;
      const tm = headOnly ? times.head : times.full;
      tm[0] += (performance.now() - ts) / 1000; tm[1]++;
      progress.tick(1, { loss, phase: headOnly ? 'head' : 'full' });
      if (step % o.logEvery === 0 || step === last) {
        run.log({ step, phase: headOnly ? 'head' : 'full', loss, gradNorm, lr: opt.groups[0].lr });
      }
      if (step % o.ckptEvery === 0 || step === last) save();
    }
    progress.done({ loss });
    if (step === total && total === 0 && !prev) save();
  } finally {
    opt.dispose();
  }
  psi.eval();
  const per = (x: number[]): number => (x[1] ? x[0] / x[1] : NaN);
  const result: GtsResult = { finished: step === total, model: psi, pool, step, loss, secondsPerHeadStep: per(times.head),
    secondsPerFullStep: per(times.full), poolSeconds, seconds: (performance.now() - t0) / 1000 };
  if (result.finished) run.log({ event: 'done', step, loss, secondsPerHeadStep: result.secondsPerHeadStep, secondsPerFullStep: result.secondsPerFullStep });
  return result;
}
