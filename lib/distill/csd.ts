// Stage 2 of DD2 (METHOD §4.2, §5.3, §5.6, §5.7, §6.1): conditional score distillation. The generator θ and the
// guidance network ψ both start as copies of the stage-1 AR-diffusion model ψ0. Per generator step:
//  - K guidance (FCS) updates: z = sg(G_θ(ε)), f = ψ.features(y, z), m draws per token of t ~ U[fcsTMin, fcsTMax]
//    and ε', x = (1 − t)z + tε', loss = mean (v_ψ(x, t, f) − (ε' − z))²;
//  - one CSD update of θ: z = G_θ(ε) with gradient; P = teacher.probs(y, sg(z)); f = ψ.features(y, sg(z)) without
//    gradient; t ~ U[tMin, tMax] per token (csdDraws independent (t, ε') draws per token, whose gradients add
//    with weight 1/csdDraws); x_t = (1 − t)sg(z) + tε'; D_ψ = x_t − t·v_ψ(x_t, t, f) with ψ frozen
//    but differentiable in x_t; csdGrad gives the per-token SiD loss, its gradient gx w.r.t. the token and
//    gDψ; gDψ is back-propagated through D_ψ to x_t and (1 − t)·x_t.grad is added to gx (none of this with
//    --detached, the DMD variant); then backward(z, gx) through the generator. Tokens see their prefix as a
//    stop-gradient (the teacher and ψ read sg(z)), so gradients reach θ only through each token itself.
// Adam (0.9, 0.95) for both networks (one optimiser, a parameter group each), linear LR warm-up from 1e-6,
// gradient clipping, EMA of θ with β(i) = min(0.9999, (i+1)/(i+10)). Optional performance alignment: at
// generator step alignAt, θ ← EMA(θ), then alignSteps guidance-only updates, then K = kAfter.
// Letters: B batch, N tokens per image, C code dim, E width, m draws.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator, type GeneratorState } from '../tensor/random.js';
import { backward } from '../autograd/tape.js';
import { abs, add, addScalar, mul, mulScalar, neg, square, sub, maximum } from '../tensor/ops/elementwise.js';
import { mean, sum } from '../tensor/ops/reduce.js';
import { detach, reshape } from '../tensor/ops/shape.js';
import { full } from '../tensor/create.js';
import { csdGrad } from '../tensor/ops/cond-score.js';
import { Module } from '../nn/module.js';
import { AdamW, clipGradNorm, EMA } from '../nn/optim.js';
import { lossStep } from '../nn/loss-step.js';
import { restoreTrainingState, type RunDir } from '../io/checkpoint.js';
import { Progress } from '../io/progress.js';
import { arDiffusionMeta, type ARDiffusion } from '../models/ar-diffusion.js';
import { disposeProbs, repeatProbs, type ScoreTeacher } from './teacher.js';
import { noisy, repeat0, type SamplePool } from './gts.js';
import { regressLoss } from './regress.js';
import { decayFactor, emaBeta, uniformLabels, uniformT, warmupLr } from './schedule.js';
import type { StageHooks } from './adapt.js';

export interface CsdOptions {
  /** generator updates */
  steps: number;
  /** K: guidance updates per generator update (before / after performance alignment) */
  guidanceSteps: number;
  guidanceStepsAfter: number;
  /** sequences per generator update, and per guidance update (0: the same as batchSize) */
  batchSize: number;
  guidanceBatch: number;
  /** m: noise draws per token in the guidance (FCS) loss */
  draws: number;
  /** noise draws (t, ε') per generated token in the generator (CSD) loss: more draws average the estimate over
   * t at little cost (one generator pass, one teacher pass; only the score evaluations repeat) */
  csdDraws: number;
  /** end learning rates of the generator and the guidance network, and the start LR of the warm-up */
  lrGen: number;
  lrGui: number;
  lrStart: number;
  /** warm-up length in generator steps (both networks) */
  warmup: number;
  /** the generator LR falls linearly to 0 over this last fraction of the updates (0: constant after warm-up) */
  decay: number;
  betas: [number, number];
  clip: number;
  /** SiD's α, the floor of the per-token normaliser λ, and the DMD variant (both denoisers detached) */
  alpha: number;
  lambdaMin: number;
  detached: boolean;
  /** timestep intervals of the CSD update and of the guidance loss */
  tMin: number;
  tMax: number;
  fcsTMin: number;
  fcsTMax: number;
  /** weight of the regression loss on the flow-map pairs added to every generator update (DMD's regression
   * term; our choice; 0: pure CSD) and its batch (sequences drawn from the stage-1 pool) */
  regWeight: number;
  regBatch: number;
  /** cap of the EMA rate */
  emaCap: number;
  /** performance alignment at this generator step (0: never), with this many guidance-only updates */
  alignAt: number;
  alignSteps: number;
  seed: number;
  ckptEvery: number;
  logEvery: number;
}

// Defaults sized for MNIST on 2 CPU cores (~1 s per update at batch 16). Measured on the MNIST CPU teacher
// (one-step FID, n = 1000, teacher 52), from ψ0 alone (no warm start) after 1200 updates of batch 16: K = 1 stalls
// near 680, K = 2 reaches 400; 8 CSD draws per token 323; a guidance LR 4x the generator's 261 (the paper's ratios
// are 2x to 8x); generator LRs of 1e-3 and above collapse. From the regression warm start (3000 steps, FID 81)
// 600 updates reach 64; the regression term (weight 1) keeps the tabular ground-truth test's TV at 0.03 where pure
// CSD drifts from 0.042 to 0.06-0.09. The paper's ImageNet runs use 1e-4 / 2e-4 with 10k+ updates.
export const defaultCsdOptions: CsdOptions = {
  steps: 500, guidanceSteps: 2, guidanceStepsAfter: 2, batchSize: 16, guidanceBatch: 0, draws: 4, csdDraws: 8, lrGen: 3e-4, lrGui: 1.2e-3, lrStart: 1e-6,
  warmup: 20, decay: 0, betas: [0.9, 0.95], clip: 1.0, alpha: 1.0, lambdaMin: 1e-4, detached: false, tMin: 0.02, tMax: 0.98,
  fcsTMin: 1e-3, fcsTMax: 1 - 1e-3, regWeight: 1, regBatch: 16, emaCap: 0.9999, alignAt: 0, alignSteps: 0, seed: 0, ckptEvery: 50, logEvery: 10,
};

/** The two networks of stage 2 under one module, so one checkpoint holds both (names generator.*, guidance.*). */
export class CsdPair extends Module {
  readonly generator: ARDiffusion;
  readonly guidance: ARDiffusion;

  constructor(generator: ARDiffusion, guidance: ARDiffusion) {
    super();
    this.generator = this.registerModule('generator', generator);
    this.guidance = this.registerModule('guidance', guidance);
  }
}

/** One guidance (FCS) update's loss on fresh generator samples: returns the scalar loss (graph on ψ). */
export function fcsLoss(pair: CsdPair, numClasses: number, B: number, m: number, gen: Generator, tMin: number, tMax: number): Tensor {
  const { generator: g, guidance: psi } = pair;
  const N = g.seqLen, C = g.tokenDim, device = g.device;
  const labels = uniformLabels(gen, B, numClasses, device).t;
  const z = noGrad(() => g.generate(labels, gen.normal([B, N, C], device)));     // (B, N, C)
  const f = psi.features(labels, z);
  const t = uniformT(gen, [m * B, N], tMin, tMax, device);
  const e = gen.normal([m * B, N, C], device);
  const zr = repeat0(z, m);
  const v = psi.velocity(noisy(zr, t, e), t, repeat0(f, m));
  return mean(square(sub(v, sub(e, zr))));
}

export interface CsdStepStats { loss: number; lambda: number }

/**
 * The CSD gradient of one generator batch, accumulated into the generator's parameters (.grad); ψ's
 * parameters receive nothing. Returns the mean per-token SiD loss and the mean λ.
 */
export function csdBackward(pair: CsdPair, teacher: ScoreTeacher, B: number, gen: Generator, o: CsdOptions): CsdStepStats {
  const g = pair.generator;
  const N = g.seqLen, C = g.tokenDim, device = g.device, R = Math.max(1, o.csdDraws ?? 1) * B;
  const labels = uniformLabels(gen, B, teacher.numClasses, device).t;
  const z = g.generate(labels, gen.normal([B, N, C], device));                     // (B, N, C), graph on θ
  const t = uniformT(gen, [R, N], o.tMin, o.tMax, device);
  const eps = gen.normal([R, N, C], device);
  const r = csdTokenGrad(pair, teacher, labels, detach(z), t, eps, o);
  backward(z, r.gx);
  return { loss: r.loss, lambda: r.lambda };
}

/**
 * The CSD gradient with respect to the generated tokens zd (B, N, C) (detached), for given draws: t (mB, N) and
 * ε' (mB, N, C), draw-major (rows j·B .. j·B + B − 1 are draw j of the B sequences). The m draws' per-token
 * gradients are averaged (each row carries weight 1/(mBN)), so m = 1 is the plain per-token mean. Returns gx
 * (B, N, C) with the mean SiD loss and mean λ. ψ's parameters are left without gradient.
 */
export function csdTokenGrad(pair: CsdPair, teacher: ScoreTeacher, labels: Tensor, zd: Tensor, t: Tensor, eps: Tensor, o: CsdOptions):
  { gx: Tensor; loss: number; lambda: number } {
  const psi = pair.guidance;
  const [B, N, C] = zd.shape, R = t.shape[0], m = R / B, M = R * N, device = zd.device;
  if (!Number.isInteger(m) || m < 1 || eps.shape[0] !== R) {
    throw new RangeError(`dd2: csd: t (${t.shape}) and ε' (${eps.shape}) must hold a whole number of draws of ${B} sequences`);
  }
  const P0 = teacher.probs(labels, zd);
  const P = repeatProbs(P0, m);
  const frozen = psi.parameters().filter((p) => p.requiresGrad);
  try {
    for (const p of frozen) p.requiresGrad = false;
    const f = noGrad(() => repeat0(psi.features(labels, zd), m));                   // (mB, N, E)
    const zr = repeat0(zd, m);                                                      // (mB, N, C)
    const xt = noGrad(() => noisy(zr, t, eps));
    xt.requiresGrad = !o.detached;
    const dpsi = sub(xt, mul(reshape(t, [R, N, 1]), psi.velocity(xt, t, f)));       // (mB, N, C), graph on x_t
    const r = csdGrad({ x: reshape(zr, [M, C]), xt: reshape(xt, [M, C]), t: reshape(t, [M]), dpsi: reshape(detach(dpsi), [M, C]),
      codebook: teacher.codebook, p: P, alpha: o.alpha, scale: 1 / M, lambdaMin: o.lambdaMin, detached: o.detached });
    let gx = reshape(r.gx, [R, N, C]);
    if (!o.detached) {
      backward(dpsi, reshape(r.gDpsi, [R, N, C]));
      gx = noGrad(() => add(gx, mul(addScalar(neg(reshape(t, [R, N, 1])), 1), xt.grad!)));
      xt.grad?.dispose();
      xt.grad = null;
    }
    // the m draws of a token differentiate the same generated token: their gradients add up
    if (m > 1) gx = noGrad(() => sum(reshape(gx, [m, B, N, C]), [0]));
    return noGrad(() => {
      const lam = maximum(mean(abs(sub(reshape(zr, [M, C]), r.dphi)), [1]), full([M], o.lambdaMin, { device }));
      return { gx, loss: mean(r.loss).item(), lambda: mean(lam).item() };
    });
  } finally {
    for (const p of frozen) p.requiresGrad = true;
    if (m > 1) disposeProbs(P);
    disposeProbs(P0);
  }
}

export interface CsdResult {
  finished: boolean;
  pair: CsdPair;
  /** the generator with the EMA weights (what is evaluated and saved as generator.safetensors) */
  generatorEma: ARDiffusion;
  step: number;
  fcsLoss: number;
  csdLoss: number;
  lambda: number;
  /** seconds per generator step including its K guidance updates (mean over this call's steps) */
  secondsPerStep: number;
  seconds: number;
}

interface Saved { rng?: GeneratorState; extra?: { fcsLoss?: number; csdLoss?: number; lambda?: number; aligned?: boolean } }

/**
 * Runs (or resumes) stage 2 in `run` (the stage's folder) from ψ0 (not modified; θ and ψ are clones).
 * The caller owns the result's pair and generatorEma (dispose both).
 */
/** Where stage 2 starts: θ from `generator` (default ψ0: the paper's initialisation, or the regression warm
 * start), and the flow-map pool the regression term (regWeight > 0) draws from. */
export interface CsdInit { generator?: ARDiffusion; pool?: SamplePool }

export function runCSD(run: RunDir, teacher: ScoreTeacher, psi0: ARDiffusion, o: CsdOptions, hooks: StageHooks = {},
  init: CsdInit = {}): CsdResult {
  const t0 = performance.now();
  const theta0 = init.generator ?? psi0, regWeight = o.regWeight ?? 0;
  if (regWeight > 0 && !init.pool?.eps) {
    throw new Error('dd2: csd: the regression term (--csd-reg > 0) needs the flow-map pool of stage 1 (pool.safetensors with noise)');
  }
  const pair = new CsdPair(theta0.clone().train(), psi0.clone().train());
  const { generator: g, guidance: psi } = pair;
  const opt = new AdamW([{ params: g.parameters(), lr: o.lrGen }, { params: psi.parameters(), lr: o.lrGui }],
    { lr: o.lrGen, betas: o.betas, weightDecay: 0 });
  const ema = new EMA(g, o.emaCap);
  let rng = new Generator(o.seed);
  let step = 0, aligned = false, fcs = NaN, csd = NaN, lambda = NaN, reg = NaN, timeSum = 0, timeCount = 0;
  const decay = decayFactor(o.steps, o.decay ?? 0);
  const wG = warmupLr(o.lrStart, o.lrGen, o.warmup), wP = warmupLr(o.lrStart, o.lrGui, o.warmup);
  const lrG = (i: number): number => wG(i) * decay(i), lrP = wP;
  try {
    const prev = run.loadTrainingState('csd');
    if (prev) {
      restoreTrainingState(prev, { module: pair, optimizer: opt, ema });
      const s = prev as unknown as Saved;
      step = prev.step;
      if (s.rng) rng = Generator.fromState(s.rng);
      aligned = s.extra?.aligned ?? false;
      fcs = s.extra?.fcsLoss ?? NaN; csd = s.extra?.csdLoss ?? NaN; lambda = s.extra?.lambda ?? NaN;
      run.log({ event: 'resume', step });
    } else {
      run.log({ event: 'start', params: g.numParameters() });
    }
    const save = (): void => {
      run.saveTrainingState('csd', { module: pair, optimizer: opt, ema, step, rng: rng.state(),
        meta: { kind: 'csd-pair', config: { generator: g.cfg, guidance: psi.cfg }, step },
        extra: { fcsLoss: fcs, csdLoss: csd, lambda, aligned } });
    };
    const guidanceUpdate = (): { loss: number; gradNorm: number } => lossStep(opt, psi.parameters(), o.clip,
      () => fcsLoss(pair, teacher.numClasses, o.guidanceBatch || o.batchSize, o.draws, rng, o.fcsTMin, o.fcsTMax));
    const progress = new Progress(o.steps, 'csd', { json: hooks.json, stream: hooks.progressStream });
    progress.tick(step);
    const last = Math.min(o.steps, step + (hooks.stopAfter ?? Infinity));
    while (step < last) {
      const ts = performance.now();
      opt.groups[0].lr = lrG(step);
      opt.groups[1].lr = lrP(step);
      if (o.alignAt > 0 && step === o.alignAt && !aligned) {
        ema.copyTo(g);                                                // θ ← EMA(θ), then ψ catches up alone
        let l = NaN;
        for (let k = 0; k < o.alignSteps; k++) l = guidanceUpdate().loss;
        aligned = true;
        run.log({ step, event: 'performance alignment', guidanceSteps: o.alignSteps, fcsLoss: l });
      }
      const K = aligned ? o.guidanceStepsAfter : o.guidanceSteps;
      let fsum = 0, guiNorm = NaN;
      for (let k = 0; k < K; k++) {
        const r = guidanceUpdate();
        fsum += r.loss;
        guiNorm = r.gradNorm;
      }
      if (K > 0) fcs = fsum / K;
      const st = tidy(() => csdBackward(pair, teacher, o.batchSize, rng, o));
      if (regWeight > 0) {
        const pool = init.pool!;
        reg = tidy(() => {
          const u = rng.uniform([o.regBatch], 'cpu').toFloat32Array();
          const rows = Int32Array.from(u, (x) => Math.min(pool.S - 1, Math.floor(x * pool.S)));
          const l = regressLoss(g, pool, rows, teacher.codebook);
          backward(mulScalar(l, regWeight));
          return l.item();
        });
      }
      const genNorm = clipGradNorm(g.parameters(), o.clip);
      opt.step();
      opt.zeroGrad();
      ema.update(emaBeta(ema.updates, o.emaCap));
      csd = st.loss;
      lambda = st.lambda;
      step++;
      timeSum += (performance.now() - ts) / 1000;
      timeCount++;
      progress.tick(1, { csd, fcs, lambda });
      if (step % o.logEvery === 0 || step === last) {
        run.log({ step, csdLoss: csd, fcsLoss: fcs, lambda, ...(regWeight > 0 ? { regLoss: reg } : {}), genGradNorm: genNorm, guiGradNorm: guiNorm, K,
          lrGen: opt.groups[0].lr, lrGui: opt.groups[1].lr });
      }
      if (step % o.ckptEvery === 0 || step === last) save();
    }
    progress.done({ csd, fcs });
    if (o.steps === 0 && !prev) save();
  } catch (e) {
    opt.dispose();
    ema.dispose();
    pair.dispose();
    throw e;
  }
  opt.dispose();
  const generatorEma = g.clone();
  ema.copyTo(generatorEma);
  ema.dispose();
  pair.eval();
  generatorEma.eval();
  const finished = step === o.steps;
  const result: CsdResult = { finished, pair, generatorEma, step, fcsLoss: fcs, csdLoss: csd, lambda,
    secondsPerStep: timeCount ? timeSum / timeCount : NaN, seconds: (performance.now() - t0) / 1000 };
  if (finished) run.log({ event: 'done', step, csdLoss: csd, fcsLoss: fcs, lambda, secondsPerStep: result.secondsPerStep });
  return result;
}

/** The meta of a generator or guidance file written by the pipeline. */
export function networkMeta(model: ARDiffusion, role: 'generator' | 'guidance', step: number, tokenizer?: string): ReturnType<typeof arDiffusionMeta> {
  return arDiffusionMeta(model, { step, role, tokenizer });
}
