// Between stage 1 and stage 2 (our choice; METHOD §9 and DMD's regression loss): a regression warm start of the
// one-step generator on (noise, sequence) pairs of the teacher's flow map. Stage 1's pool, drawn through the
// flow map (lib/distill/flow-map.ts, GtsOptions.poolFlowSteps), keeps the noise ε (S, N, C) that each teacher
// sequence q (S, N) came from; the generator θ (a clone of ψ0, the stage-1 AR-diffusion model) learns the map
// in one pass:  loss = mean ‖G_θ(ε, y) − c_q‖²  (mean over tokens and the C coordinates). The map ε ↦ q is
// exactly the causal, triangular dependence the generator has (token i from ε_≤i), so the regression puts θ
// near a deterministic transport of N(0, I) onto the teacher's joint before CSD refines the distribution;
// measured to speed stage 2 up (NOTES.md, "Regression warm start"). steps = 0 skips it (θ starts at ψ0, the
// paper's initialisation). Adam (0.9, 0.95), linear warm-up, clipping; checkpoints resume exactly.
// Letters: B batch, N tokens per image, C code dim, S pool size.
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { square, sub } from '../tensor/ops/elementwise.js';
import { mean } from '../tensor/ops/reduce.js';
import { AdamW } from '../nn/optim.js';
import { lossStep } from '../nn/loss-step.js';
import { restoreTrainingState, type RunDir } from '../io/checkpoint.js';
import { Progress } from '../io/progress.js';
import { Batcher, type BatcherState } from '../data/dataset.js';
import { arDiffusionMeta, type ARDiffusion } from '../models/ar-diffusion.js';
import { poolBatch, type SamplePool } from './gts.js';
import type { ScoreTeacher } from './teacher.js';
import { warmupLr } from './schedule.js';
import type { StageHooks } from './adapt.js';

export interface RegressOptions {
  /** generator updates (0: no warm start) */
  steps: number;
  batchSize: number;
  lr: number;
  /** linear LR warm-up (steps, from 0) */
  warmup: number;
  betas: [number, number];
  clip: number;
  seed: number;
  ckptEvery: number;
  logEvery: number;
}

// Sized for MNIST on 2 CPU cores (~0.22 s per step at batch 32). One-step FID (n = 1000, teacher 52) of the
// warm-started generator alone: 600 steps 149, 1500 104, 2000 92 (batch 64: 79; LR 2e-3: 95; a 16k pool: 105),
// 3000 81; from ψ0 it is 1315.
export const defaultRegressOptions: RegressOptions = {
  steps: 3000, batchSize: 32, lr: 1e-3, warmup: 20, betas: [0.9, 0.95], clip: 1.0, seed: 0, ckptEvery: 100, logEvery: 10,
};

/** The regression loss of pool rows (graph on θ): mean squared distance of G_θ(ε) to the codes of q. */
export function regressLoss(g: ARDiffusion, pool: SamplePool, rows: Int32Array, codebook: ScoreTeacher['codebook']): ReturnType<typeof mean> {
  const N = pool.N, C = codebook.shape[1], B = rows.length;
  if (!pool.eps || pool.C !== C) {
    throw new Error('dd2: regression warm start: the stage-1 pool has no flow-map noise (it was drawn categorically); ' +
      'delete gts/pool.safetensors and rerun stage 1 with --pool-flow-steps > 0, or pass --reg-steps 0');
  }
  const e = new Float32Array(B * N * C);
  rows.forEach((r, b) => e.set(pool.eps!.subarray(r * N * C, (r + 1) * N * C), b * N * C));
  const { labels, z } = poolBatch(pool, rows, codebook);
  const x = g.generate(labels, tensor(e, [B, N, C], { device: codebook.device }));
  return mean(square(sub(x, z)));
}

export interface RegressResult {
  finished: boolean;
  /** the warm-started generator θ (eval mode; the caller disposes it) */
  model: ARDiffusion;
  step: number;
  loss: number;
  secondsPerStep: number;
  seconds: number;
}

interface Saved { batcher?: BatcherState; extra?: { loss?: number } }

/**
 * Runs (or resumes) the warm start in `run` (its folder) from ψ0 (not modified: θ is a clone) on the flow-map
 * pool of stage 1.
 */
export function runRegress(run: RunDir, teacher: ScoreTeacher, psi0: ARDiffusion, pool: SamplePool, o: RegressOptions,
  hooks: StageHooks = {}): RegressResult {
  const t0 = performance.now();
  const g = psi0.clone().train();
  const opt = new AdamW(g.parameters(), { lr: o.lr, betas: o.betas, weightDecay: 0 });
  let batcher = new Batcher(pool.S, o.batchSize, { seed: o.seed, shuffle: true, dropLast: pool.S >= o.batchSize });
  let step = 0, loss = NaN, timeSum = 0, timeCount = 0;
  try {
    const prev = run.loadTrainingState('regress');
    if (prev) {
      restoreTrainingState(prev, { module: g, optimizer: opt });
      const s = prev as unknown as Saved;
      step = prev.step;
      if (s.batcher) batcher = Batcher.fromState(pool.S, o.batchSize, s.batcher, { shuffle: true, dropLast: batcher.dropLast });
      loss = s.extra?.loss ?? NaN;
      run.log({ event: 'resume', step });
    } else {
      run.log({ event: 'start', params: g.numParameters(), pool: pool.S });
    }
    const save = (): void => {
      run.saveTrainingState('regress', { module: g, optimizer: opt, step, batcher: batcher.state(),
        meta: arDiffusionMeta(g, { step, role: 'generator' }), extra: { loss } });
    };
    const lr = warmupLr(0, o.lr, o.warmup);
    const progress = new Progress(o.steps, 'regress', { json: hooks.json, stream: hooks.progressStream });
    progress.tick(step);
    const last = Math.min(o.steps, step + (hooks.stopAfter ?? Infinity));
    while (step < last) {
      const ts = performance.now();
      opt.setLr(lr(step + 1));
      const r = lossStep(opt, g.parameters(), o.clip, () => regressLoss(g, pool, batcher.next(), teacher.codebook));
      const gradNorm = r.gradNorm;
      loss = r.loss;
      step++;
      timeSum += (performance.now() - ts) / 1000;
      timeCount++;
      progress.tick(1, { loss });
      if (step % o.logEvery === 0 || step === last) run.log({ step, loss, gradNorm, lr: opt.groups[0].lr });
      if (step % o.ckptEvery === 0 || step === last) save();
    }
    progress.done({ loss });
    if (o.steps === 0 && !prev) save();
  } catch (e) {
    opt.dispose();
    g.dispose();
    throw e;
  }
  opt.dispose();
  g.eval();
  const result: RegressResult = { finished: step === o.steps, model: g, step, loss,
    secondsPerStep: timeCount ? timeSum / timeCount : NaN, seconds: (performance.now() - t0) / 1000 };
  if (result.finished) run.log({ event: 'done', step, loss, secondsPerStep: result.secondsPerStep });
  return result;
}

/** Mean regression loss over pool rows, without gradient (diagnostics and tests). */
export function regressEval(g: ARDiffusion, pool: SamplePool, rows: Int32Array, codebook: ScoreTeacher['codebook']): number {
  return noGrad(() => tidy(() => regressLoss(g, pool, rows, codebook).item()));
}
