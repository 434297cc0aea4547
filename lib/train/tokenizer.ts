// Training the VQ tokenizer (lib/models/vq.ts): AdamW with warm-up + cosine decay, gradient clipping, optional
// EMA, dead-code restarts, periodic atomic checkpoints in a run folder (--resume continues bit for bit), and a
// final evaluation on the test split: PSNR of the reconstructions (pixels in [0, 1]), codes in use and the
// perplexity of the code assignments, plus a PNG grid of test images over their reconstructions.
// Letters: B batch, N = B·h·w latent vectors, K codebook size, D code dimension.
import { backward } from '../autograd/tape.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import { Generator, type GeneratorState } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { abs, add, square, sub } from '../tensor/ops/elementwise.js';
import { AdamW, clipGradNorm, cosineSchedule, EMA } from '../nn/optim.js';
import { Batcher, imageBatch, loadDataset, toUint8Images, type BatcherState, type ImageDataset } from '../data/dataset.js';
import { restoreTrainingState, saveModel, type RunDir } from '../io/checkpoint.js';
import { Progress } from '../io/progress.js';
import { writeGrid } from '../io/png.js';
import { defaultVQConfig, meanOf, usageStats, VQModel, type VQConfig } from '../models/vq.js';

export interface TrainTokenizerOptions {
  /** 'mnist', 'fashion-mnist' or a folder of PNGs (resized to model.imageSize) */
  dataset: string;
  /** overrides of defaultVQConfig (imageChannels is taken from the dataset) */
  model: Partial<VQConfig>;
  steps: number;
  batchSize: number;
  lr: number;
  minLr: number;
  warmup: number;
  /** AdamW weight decay on conv weights only (not on norms, biases or the codebook) */
  weightDecay: number;
  betas: [number, number];
  clip: number;
  /** EMA decay of the weights (0 = off); with EMA the final model holds the averaged weights */
  emaDecay: number;
  /** reconstruction loss on [-1, 1] images: 'mse', or 'l1+mse' (the sum of both means) */
  recon: 'mse' | 'l1+mse';
  /** every restartEvery steps, codes unused in the last restartEvery batches are restarted (0 = never) */
  restartEvery: number;
  seed: number;
  ckptEvery: number;
  logEvery: number;
  /** training images used (the first n of the split; 0 = all) and test images evaluated (0 = all) */
  trainLimit: number;
  evalLimit: number;
  evalBatch: number;
}

/**
 * Defaults for MNIST on a 2-core CPU: 7x7 tokens, K = 512, D = 8 (defaultVQConfig), 600 steps of 32 images.
 * K = 512 gives 49 · 9 = 441 bits per image, enough for sharp digits, and the 10,000 test images make
 * 490,000 assignments, about 960 per code, so every live code shows up on the test split. Measured
 * 2026-11-26 with `dd2 train tokenizer` (OpenBLAS, the 2-core machine shared at load average 4.6-5.0): the
 * defaults give test PSNR 23.9 dB, 512/512 codes in use, perplexity 348, in 362 s wall (278 s training);
 * --steps 1000 gives 24.9 dB, 512/512, perplexity 359, in 372-577 s wall depending on the load.
 */
export const defaultTrainTokenizerOptions: TrainTokenizerOptions = {
  dataset: 'mnist', model: {}, steps: 600, batchSize: 32, lr: 2e-3, minLr: 1e-4, warmup: 50, weightDecay: 1e-4,
  betas: [0.9, 0.99], clip: 1.0, emaDecay: 0, recon: 'mse', restartEvery: 20, seed: 0, ckptEvery: 200, logEvery: 25,
  trainLimit: 0, evalLimit: 0, evalBatch: 500,
};

/**
 * Code usage during training. lastUsed[k] is the last step whose batch assigned some vector to code k;
 * emaCounts[k] is an exponential moving average (decay 0.99) of the number of vectors assigned to k per
 * batch (for the logged training perplexity). A code is dead at `step` when lastUsed[k] <= step − window,
 * i.e. no vector of the last `window` batches chose it.
 */
export class CodeUsage {
  lastUsed: Int32Array;
  emaCounts: Float64Array;
  restarts = 0;

  constructor(readonly K: number) {
    this.lastUsed = new Int32Array(K);
    this.emaCounts = new Float64Array(K);
  }

  /** Records the codes chosen by the batch of `step`. */
  record(idx: Int32Array, step: number): void {
    const counts = new Float64Array(this.K);
    for (const k of idx) { counts[k]++; this.lastUsed[k] = step; }
    for (let k = 0; k < this.K; k++) this.emaCounts[k] = 0.99 * this.emaCounts[k] + 0.01 * counts[k];
  }

  dead(step: number, window: number): number[] {
    const out: number[] = [];
    for (let k = 0; k < this.K; k++) if (this.lastUsed[k] <= step - window) out.push(k);
    return out;
  }

  state(): { lastUsed: number[]; emaCounts: number[]; restarts: number } {
    return { lastUsed: Array.from(this.lastUsed), emaCounts: Array.from(this.emaCounts), restarts: this.restarts };
  }

  static fromState(K: number, s: { lastUsed: number[]; emaCounts: number[]; restarts: number }): CodeUsage {
    if (s.lastUsed.length !== K || s.emaCounts.length !== K) throw new RangeError(`dd2: CodeUsage: state is for ${s.lastUsed.length} codes, not ${K}`);
    const u = new CodeUsage(K);
    u.lastUsed = Int32Array.from(s.lastUsed);
    u.emaCounts = Float64Array.from(s.emaCounts);
    u.restarts = s.restarts;
    return u;
  }
}

/**
 * Dead-code restart: each dead code k (ascending) is overwritten with z[j] for a row j drawn uniformly from
 * the N rows of the batch's L2-normalised encoder outputs z (N, D) (one uniform per dead code from `gen`,
 * j = floor(u·N)), and its lastUsed is set to `step` so it has `window` steps to attract vectors. AdamW
 * moments of restarted rows are left as they are; an EMA of the weights, if given, gets the new rows too.
 * Returns the restarted codes.
 */
export function restartDeadCodes(model: VQModel, usage: CodeUsage, z: Float32Array, step: number, window: number,
  gen: Generator, ema?: EMA): number[] {
  const dead = usage.dead(step, window);
  if (!dead.length) return dead;
  const D = model.cfg.codeDim, N = z.length / D;
  const u = noGrad(() => { const t = gen.uniform([dead.length]); const v = t.toFloat32Array(); t.dispose(); return v; });
  const rows = new Float32Array(dead.length * D);
  dead.forEach((k, i) => {
    const j = Math.min(N - 1, Math.floor(u[i] * N));
    rows.set(z.subarray(j * D, (j + 1) * D), i * D);
    usage.lastUsed[k] = step;
  });
  model.setCodes(dead, rows);
  const shadow = ema?.shadow[ema.params.indexOf(model.codebook.weight)];
  if (shadow) {
    const D4 = D * 4;
    dead.forEach((k, i) => native.storage_write(shadow.storage.id, k * D4, rows.subarray(i * D, (i + 1) * D)));
  }
  usage.restarts += dead.length;
  return dead;
}

export interface TokenizerEval {
  /** 10·log10(1 / MSE), MSE over all test pixels in [0, 1] (reconstructions clamped to the pixel range) */
  psnr: number;
  mse: number;
  /** codes chosen at least once on the evaluated images, their fraction of K, and exp(entropy) of the use */
  codesUsed: number;
  codesUsedFraction: number;
  perplexity: number;
  images: number;
}

/** Encodes and decodes ds (the first `limit` images, 0 = all) in batches; model should be in eval mode. */
export function evaluateTokenizer(model: VQModel, ds: ImageDataset, batch = 500, limit = 0): TokenizerEval {
  const n = limit > 0 ? Math.min(limit, ds.n) : ds.n;
  const counts = new Float64Array(model.codebookSize);
  let se = 0;
  for (let s = 0; s < n; s += batch) {
    const idx = Int32Array.from({ length: Math.min(batch, n - s) }, (_, i) => s + i);
    se += noGrad(() => tidy(() => {
      const x = imageBatch(ds, idx);
      const codes = model.encode(x).idx;
      for (const k of codes.toInt32Array()) counts[k]++;
      // both in [-1, 1]: the [0, 1] squared error is a quarter of it
      return meanOf(square(sub(model.decodeIndices(codes), x))).item() * idx.length / 4;
    }));
  }
  const mse = se / n, u = usageStats(counts);
  return { psnr: 10 * Math.log10(1 / mse), mse, codesUsed: u.used, codesUsedFraction: u.fraction, perplexity: u.perplexity, images: n };
}

/** A PNG of `n` images of ds: rows of 8 originals, each followed by a row of their reconstructions. */
export function writeReconstructionGrid(path: string, model: VQModel, ds: ImageDataset, n = 32): void {
  const m = Math.min(n, ds.n), per = 8;
  const { height: H, width: W, channels: C } = ds, img = H * W * C;
  const { orig, rec } = noGrad(() => tidy(() => {
    const x = imageBatch(ds, Int32Array.from({ length: m }, (_, i) => i));
    return { orig: toUint8Images(x), rec: toUint8Images(model.decodeIndices(model.encode(x).idx)) };
  }));
  const rows = Math.ceil(m / per), out = new Uint8Array(rows * 2 * per * img).fill(255);
  for (let i = 0; i < m; i++) {
    const r = Math.floor(i / per), c = i % per;
    out.set(orig.subarray(i * img, (i + 1) * img), ((2 * r) * per + c) * img);
    out.set(rec.subarray(i * img, (i + 1) * img), ((2 * r + 1) * per + c) * img);
  }
  writeGrid(path, out, rows * 2 * per, H, W, C as 1 | 3, per);
}

export interface TrainTokenizerHooks {
  json?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** stop after this step (tests of --resume); the run is checkpointed there */
  stopAfter?: number;
}

export interface TrainTokenizerResult {
  /** false when hooks.stopAfter ended the run early (no final model or evaluation then) */
  finished: boolean;
  runDir: string; modelPath: string; gridPath: string; step: number; seconds: number; trainSeconds: number;
  params: number; config: VQConfig;
  /** mean training loss of the first and of the last logEvery steps run in this process */
  trainLossStart: number; trainLoss: number; restarts: number;
  test: TokenizerEval | null;
}

interface Saved { rng?: GeneratorState; batcher?: BatcherState; extra?: { usage?: ReturnType<CodeUsage['state']>; trainLossStart?: number } }

function optimizerFor(model: VQModel, o: TrainTokenizerOptions): AdamW {
  const named = model.namedParameters();
  const decay = named.filter(([, p]) => p.rank === 4).map(([, p]) => p);
  const rest = named.filter(([, p]) => p.rank !== 4).map(([, p]) => p);
  return new AdamW([{ params: decay }, { params: rest, weightDecay: 0 }], { lr: o.lr, betas: o.betas, weightDecay: o.weightDecay });
}

/** One optimiser step on images x; returns the loss terms and, when asked, the batch's normalised z. */
function trainStep(model: VQModel, x: Tensor, o: TrainTokenizerOptions, wantZ: boolean):
  { loss: number; mse: number; idx: Int32Array; z: Float32Array | null } {
  const out = model.forward(x);
  const d = sub(out.recon, x);
  const mse = meanOf(square(d));
  const recon = o.recon === 'mse' ? mse : add(meanOf(abs(d)), mse);
  let loss = add(add(recon, out.codebookLoss), out.commitLoss);
  if (out.entropyLoss) loss = add(loss, out.entropyLoss);
  backward(loss);
  return { loss: loss.item(), mse: mse.item(), idx: out.idx.toInt32Array(), z: wantZ ? out.z.toFloat32Array() : null };
}

/**
 * Trains (or, when `run` holds a checkpoint, resumes) a VQ tokenizer. The caller stores the options in
 * run.json; resuming with the same options continues the run bit for bit (CPU).
 */
export async function trainTokenizer(run: RunDir, o: TrainTokenizerOptions, hooks: TrainTokenizerHooks = {}): Promise<TrainTokenizerResult> {
  const t0 = performance.now();
  const size = o.model.imageSize ?? defaultVQConfig.imageSize;
  const train = await loadDataset(o.dataset, 'train', { size, limit: o.trainLimit > 0 ? o.trainLimit : undefined });
  const test = await loadDataset(o.dataset, 'test', { size, limit: o.evalLimit > 0 ? o.evalLimit : undefined });
  const cfg: VQConfig = { ...defaultVQConfig, ...o.model, imageSize: size, imageChannels: train.channels };
  const model = new VQModel(cfg, o.seed);
  const opt = optimizerFor(model, o);
  const ema = o.emaDecay > 0 ? new EMA(model, o.emaDecay) : undefined;
  const lr = cosineSchedule({ warmup: Math.min(o.warmup, o.steps), total: o.steps, base: o.lr, min: Math.min(o.minLr, o.lr) });
  let batcher = new Batcher(train.n, o.batchSize, { seed: o.seed, shuffle: true, dropLast: train.n >= o.batchSize });
  let gen = new Generator(o.seed + 1);                         // restarts (the weights use Generator(seed))
  let usage = new CodeUsage(cfg.codebookSize);
  let step = 0, trainLossStart = NaN;
  const meta = { kind: 'vq', config: cfg, step: 0, options: o };
  const prev = run.loadTrainingState('tokenizer');
  if (prev) {
    restoreTrainingState(prev, { module: model, optimizer: opt, ema });
    const s = prev as unknown as Saved;
    step = prev.step;
    if (s.rng) gen = Generator.fromState(s.rng);
    if (s.batcher) batcher = Batcher.fromState(train.n, o.batchSize, s.batcher, { shuffle: true, dropLast: batcher.dropLast });
    if (s.extra?.usage) usage = CodeUsage.fromState(cfg.codebookSize, s.extra.usage);
    trainLossStart = s.extra?.trainLossStart ?? NaN;
    run.log({ event: 'resume', step });
  } else {
    run.log({ event: 'start', params: model.numParameters(), config: cfg, train: train.n, test: test.n });
  }
  const save = (): void => {
    run.saveTrainingState('tokenizer', { module: model, optimizer: opt, ema, step, rng: gen.state(), batcher: batcher.state(),
      meta: { ...meta, step }, extra: { usage: usage.state(), trainLossStart } });
  };
  const progress = new Progress(o.steps, 'train tokenizer', { json: hooks.json, stream: hooks.progressStream });
  progress.tick(step);
  const stopAt = Math.min(o.steps, hooks.stopAfter ?? o.steps);
  const params = model.parameters();
  let recent: number[] = [], trainLoss = NaN;
  const tTrain = performance.now();
  try {
    model.train();
    while (step < stopAt) {
      opt.setLr(lr(step));
      const restartNow = o.restartEvery > 0 && (step + 1) % o.restartEvery === 0;
      const idx = batcher.next();
      const r = tidy(() => trainStep(model, imageBatch(train, idx), o, restartNow));
      const gradNorm = clipGradNorm(params, o.clip);
      opt.step();
      opt.zeroGrad();
      ema?.update(Math.min(o.emaDecay, (1 + ema.updates) / (10 + ema.updates)));
      usage.record(r.idx, step + 1);
      if (r.z) restartDeadCodes(model, usage, r.z, step + 1, o.restartEvery, gen, ema);
      step++;
      recent.push(r.loss);
      progress.tick(1, { loss: r.loss, psnr: 10 * Math.log10(4 / r.mse) });   // batch PSNR, [0, 1] pixels
      if (step % o.logEvery === 0 || step === stopAt) {
        trainLoss = recent.reduce((s, v) => s + v, 0) / recent.length;
        if (!Number.isFinite(trainLossStart)) trainLossStart = trainLoss;
        const u = usageStats(usage.emaCounts);
        run.log({ step, loss: trainLoss, mse: r.mse, lr: lr(step - 1), gradNorm, usagePerplexity: u.perplexity,
          restarts: usage.restarts, seconds: (performance.now() - t0) / 1000 });
        recent = [];
      }
      if (step % o.ckptEvery === 0 || step === stopAt) save();
    }
    const trainSeconds = (performance.now() - tTrain) / 1000;
    progress.done({ loss: trainLoss });
    const base = { runDir: run.dir, step, trainSeconds, params: model.numParameters(), config: cfg, trainLossStart, trainLoss,
      restarts: usage.restarts };
    if (step < o.steps) {
      return { ...base, finished: false, modelPath: '', gridPath: '', seconds: (performance.now() - t0) / 1000, test: null };
    }
    model.eval();
    if (ema) ema.copyTo(model);
    const result = evaluateTokenizer(model, test, o.evalBatch);
    const modelPath = run.path('vq.safetensors'), gridPath = run.path('reconstructions.png');
    saveModel(modelPath, model, { ...meta, step, options: { ...o, weights: ema ? 'ema' : 'live' } });
    writeReconstructionGrid(gridPath, model, test);
    const out: TrainTokenizerResult = { ...base, finished: true, modelPath, gridPath, seconds: (performance.now() - t0) / 1000, test: result };
    run.log({ event: 'done', ...out, config: undefined });
    return out;
  } finally {
    opt.dispose();
    ema?.dispose();
    model.dispose();
  }
}
