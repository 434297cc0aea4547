// Training the AR teacher (LlamaGen autoregressive/train/train_c2i.py, scaled down): cross-entropy on a
// token cache written by `dd2 encode`, AdamW (betas 0.9/0.95, weight decay on matrices only), linear
// warm-up then cosine decay, gradient clipping, EMA, gradient accumulation, checkpoints in a run folder
// with exact --resume, and a final test evaluation: NLL per token (nats and bits), bits per image
// dimension, and the unigram-token baseline. Letters: B batch, N tokens per image, V vocabulary.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator, type GeneratorState } from '../tensor/random.js';
import { backward } from '../autograd/tape.js';
import { mulScalar } from '../tensor/ops/elementwise.js';
import { crossEntropy } from '../tensor/ops/softmax.js';
import { AdamW, clipGradNorm, cosineSchedule, EMA } from '../nn/optim.js';
import { loadModelFile, restoreTrainingState, saveModel, type CheckpointMeta, type RunDir } from '../io/checkpoint.js';
import { Progress } from '../io/progress.js';
import { Batcher, type BatcherState } from '../data/dataset.js';
import { readTokenCacheFile } from './token-cache.js';
import { GPT, gptConfig, type GPTConfig } from '../models/gpt.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Device } from '../tensor/dtype.js';

/** A token cache: tokens (n, N) int32, labels (n) int32, and what the cache says about itself. */
export interface TokenCache {
  path: string; n: number; seqLen: number; grid: [number, number]; codebookSize: number; numClasses: number;
  tokens: Int32Array; labels: Int32Array; tokenizer?: string; dataset?: string; split?: string;
}

/** Reads a cache written by `dd2 encode` (lib/train/token-cache.ts) and checks its labels. */
export function readTokenCache(path: string): TokenCache {
  const { meta, n, tokens, labels } = readTokenCacheFile(path);
  const C = meta.numClasses;
  for (const v of labels) if (!(v >= 0 && v < C)) throw new Error(`dd2: ${path}: label ${v} outside [0, ${C})`);
  return { path, n, seqLen: meta.grid[0] * meta.grid[1], grid: meta.grid, codebookSize: meta.codebookSize, numClasses: C,
    tokens, labels, tokenizer: meta.tokenizer, dataset: meta.dataset, split: meta.split };
}

/** Rows [start, end) of a cache as a new cache. */
export function sliceCache(c: TokenCache, start: number, end: number, split: string): TokenCache {
  return { ...c, n: end - start, split, tokens: c.tokens.slice(start * c.seqLen, end * c.seqLen), labels: c.labels.slice(start, end) };
}

/** Unigram baseline: entropy of the train token frequencies and the cross-entropy of the test tokens under
 *  them (add-one smoothing), in nats per token. */
export function unigramBaseline(train: TokenCache, test: TokenCache): { trainEntropy: number; testCrossEntropy: number } {
  const K = train.codebookSize, counts = new Float64Array(K);
  for (const v of train.tokens) counts[v]++;
  let ent = 0;
  for (const c of counts) if (c > 0) { const p = c / train.tokens.length; ent -= p * Math.log(p); }
  let ce = 0;
  const denom = train.tokens.length + K;
  for (const v of test.tokens) ce -= Math.log((counts[v] + 1) / denom);
  return { trainEntropy: ent, testCrossEntropy: ce / test.tokens.length };
}

/** Tokens and labels of rows idx as tensors: (B, N) and (B). */
/** Token rows `idx` of a cache and their labels, packed for one batch. */
export function batchOf(c: TokenCache, idx: Int32Array): { toks: Int32Array; labs: Int32Array } {
  const N = c.seqLen, toks = new Int32Array(idx.length * N), labs = new Int32Array(idx.length);
  idx.forEach((r, b) => { toks.set(c.tokens.subarray(r * N, (r + 1) * N), b * N); labs[b] = c.labels[r]; });
  return { toks, labs };
}

/** Mean NLL per token (nats) of the model on a cache, teacher-forced, in eval mode, batches of `batch`. */
export function evaluateNLL(model: GPT, c: TokenCache, batch = 256): number {
  return evaluateNLLWith(model, c, (labels, tokens) => model.logitsForImages(labels, tokens), batch);
}

/**
 * Mean NLL per token (nats) on a cache of any model whose `logits(labels (B), tokens (B, N))` gives (B, N, V)
 * with row j predicting token j; the model is put in eval mode for the pass and restored after.
 */
export function evaluateNLLWith(model: Module & { readonly device: Device }, c: TokenCache,
  logits: (labels: Tensor, tokens: Tensor) => Tensor, batch = 256): number {
  const was = model.training;
  model.eval();
  let sum = 0;
  try {
    for (let s = 0; s < c.n; s += batch) {
      const idx = Int32Array.from({ length: Math.min(batch, c.n - s) }, (_, i) => s + i);
      const { toks, labs } = batchOf(c, idx);
      sum += noGrad(() => tidy(() => {
        const device = model.device, t = tensor(toks, [idx.length, c.seqLen], { device });
        return crossEntropy(logits(tensor(labs, [idx.length], { device }), t), t, { reduction: 'sum' }).item();
      }));
    }
  } finally {
    model.train(was);
  }
  return sum / (c.n * c.seqLen);
}

export interface TrainArOptions {
  /** token cache of the training split; testTokens defaults to the same path with 'train' -> 'test' */
  tokens: string;
  testTokens?: string;
  /** named size (tiny, small, GPT-B, GPT-L) and optional overrides of the config */
  size: string;
  model?: Partial<GPTConfig>;
  steps: number;
  batchSize: number;
  /** micro-batches per optimiser step (gradient accumulation) */
  accum: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  betas: [number, number];
  clip: number;
  /** EMA decay, warmed up as min(decay, (1 + u) / (10 + u)) after u updates */
  emaDecay: number;
  seed: number;
  /** checkpoint every this many steps (and at the end) */
  ckptEvery: number;
  logEvery: number;
  /** test NLL every this many steps (0: only at the end), on at most evalLimit test images */
  evalEvery: number;
  evalLimit: number;
  evalBatch: number;
}

/**
 * Defaults for MNIST on a 2-core CPU (7x7 tokens, 512 codes): measured with the default tokenizer, tiny
 * reaches a test NLL of 1.98 nats/token after 800 steps and 1.90 after 1200 (unigram baseline 5.88), with
 * recognisable class-conditional samples at cfg 2 from about 800 steps; 1000 steps keep the run under 10
 * minutes even with a slow BLAS. LlamaGen's own settings are lr 1e-4, batch 256, betas (0.9, 0.95), wd 0.05.
 */
export const defaultTrainArOptions: Omit<TrainArOptions, 'tokens'> = {
  size: 'tiny', steps: 1000, batchSize: 64, accum: 1, lr: 3e-3, minLr: 1e-4, warmup: 100, weightDecay: 0.05,
  betas: [0.9, 0.95], clip: 1.0, emaDecay: 0.999, seed: 0, ckptEvery: 500, logEvery: 25, evalEvery: 0,
  evalLimit: 2000, evalBatch: 250,
};

export interface TrainArHooks {
  /** progress display (default: a Progress on stderr) */
  json?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** stop after this step (tests of --resume); the run is checkpointed there */
  stopAfter?: number;
}

export interface TrainArResult {
  /** false when hooks.stopAfter ended the run early: then only the checkpoint exists and the test numbers are NaN */
  finished: boolean;
  runDir: string; modelPath: string; step: number; seconds: number; params: number; config: GPTConfig;
  trainLoss: number;
  /** test NLL per token (nats) of the saved weights on the whole test split */
  testNll: number;
  /** NLL of the live and the EMA weights on the first evalLimit test images, which picks the saved weights */
  evalNllLive: number; evalNllEma: number; weights: 'ema' | 'live';
  bitsPerToken: number; bitsPerDim: number | null; unigramEntropy: number; unigramTestCrossEntropy: number;
  tokenizer?: string;
}

/** Default test cache: the train path with the last 'train' in its file name replaced by 'test', if it exists. */
export function defaultTestTokens(trainPath: string): string | undefined {
  const b = basename(trainPath), i = b.lastIndexOf('train');
  if (i < 0) return undefined;
  const p = join(dirname(trainPath), b.slice(0, i) + 'test' + b.slice(i + 5));
  return existsSync(p) ? p : undefined;
}

/** H·W·C of the tokenizer's images (for bits/dim), from its checkpoint meta; null if unknown. */
function imageDims(tokenizer: string | undefined): number | null {
  if (!tokenizer || !existsSync(tokenizer)) return null;
  try {
    const cfg = loadModelFile(tokenizer).meta.config as { imageSize?: number; imageChannels?: number };
    return cfg.imageSize && cfg.imageChannels ? cfg.imageSize * cfg.imageSize * cfg.imageChannels : null;
  } catch { return null; }
}

function optimizerFor(model: GPT, o: TrainArOptions): AdamW {
  // Weight decay on the matrices of the layers and the output head; none on embeddings and norms.
  const named = model.namedParameters();
  const decay = named.filter(([k, p]) => p.rank === 2 && !k.includes('embedding')).map(([, p]) => p);
  const rest = named.filter(([, p]) => !decay.includes(p)).map(([, p]) => p);
  return new AdamW([{ params: decay }, { params: rest, weightDecay: 0 }], { lr: o.lr, betas: o.betas, weightDecay: o.weightDecay });
}

interface Saved { rng?: GeneratorState; batcher?: BatcherState; extra?: { trainLoss?: number } }

/** The train rows, the test rows (a test cache, else the last 10% of the train rows) and the train cache. */
function loadSplits(o: TrainArOptions): { all: TokenCache; train: TokenCache; test: TokenCache } {
  const all = readTokenCache(o.tokens);
  const testPath = o.testTokens ?? defaultTestTokens(o.tokens);
  let train = all, test: TokenCache;
  if (testPath) test = readTokenCache(testPath);
  else {
    const cut = all.n - Math.max(1, Math.floor(all.n / 10));
    train = sliceCache(all, 0, cut, 'train');
    test = sliceCache(all, cut, all.n, 'held-out');
  }
  if (test.seqLen !== all.seqLen || test.codebookSize !== all.codebookSize || test.numClasses !== all.numClasses) {
    throw new Error(`dd2: train ar: test cache ${test.path} (${test.seqLen} tokens, K ${test.codebookSize}, ` +
      `${test.numClasses} classes) does not match ${all.path} (${all.seqLen}, K ${all.codebookSize}, ${all.numClasses})`);
  }
  return { all, train, test };
}

/** Model, optimiser, EMA and the counters a checkpoint holds. */
class Session {
  readonly model: GPT;
  readonly opt: AdamW;
  readonly ema: EMA;
  readonly lr: (step: number) => number;
  batcher: Batcher;
  rng: Generator;
  step = 0;
  trainLoss = NaN;

  constructor(readonly cfg: GPTConfig, readonly o: TrainArOptions, readonly train: TokenCache, readonly meta: CheckpointMeta) {
    this.rng = new Generator(o.seed);                 // initialises the model, then drives class dropout
    this.model = new GPT(cfg, this.rng);
    this.opt = optimizerFor(this.model, o);
    this.ema = new EMA(this.model, o.emaDecay);
    this.lr = cosineSchedule({ warmup: Math.min(o.warmup, o.steps), total: o.steps, base: o.lr, min: Math.min(o.minLr, o.lr) });
    this.batcher = new Batcher(train.n, o.batchSize, { seed: o.seed, shuffle: true, dropLast: train.n >= o.batchSize });
  }

  /** Continues from the run's checkpoint, if any; returns whether there was one. */
  restore(run: RunDir): boolean {
    const prev = run.loadTrainingState('ar');
    if (!prev) return false;
    restoreTrainingState(prev, { module: this.model, optimizer: this.opt, ema: this.ema });
    const s = prev as unknown as Saved;
    this.step = prev.step;
    if (s.rng) this.rng = Generator.fromState(s.rng);
    if (s.batcher) {
      this.batcher = Batcher.fromState(this.train.n, this.o.batchSize, s.batcher, { shuffle: true, dropLast: this.batcher.dropLast });
    }
    this.trainLoss = s.extra?.trainLoss ?? NaN;
    return true;
  }

  save(run: RunDir): void {
    run.saveTrainingState('ar', { module: this.model, optimizer: this.opt, ema: this.ema, step: this.step, rng: this.rng.state(),
      batcher: this.batcher.state(), meta: { ...this.meta, step: this.step }, extra: { trainLoss: this.trainLoss } });
  }

  /** One optimiser step over `accum` micro-batches; returns the mean loss and the gradient norm before clipping. */
  trainStep(): { loss: number; gradNorm: number } {
    const { o, model, train } = this;
    this.opt.setLr(this.lr(this.step));
    let loss = 0;
    for (let a = 0; a < o.accum; a++) {
      const { toks, labs } = batchOf(train, this.batcher.next());
      loss += tidy(() => {
        const device = model.device, t = tensor(toks, [labs.length, train.seqLen], { device });
        const l = crossEntropy(model.logitsForImages(tensor(labs, [labs.length], { device }), t, this.rng), t);
        backward(o.accum > 1 ? mulScalar(l, 1 / o.accum) : l);
        return l.item();
      }) / o.accum;
    }
    const gradNorm = clipGradNorm(model.parameters(), o.clip);
    this.opt.step();
    this.opt.zeroGrad();
    this.ema.update(Math.min(o.emaDecay, (1 + this.ema.updates) / (10 + this.ema.updates)));
    this.step++;
    this.trainLoss = loss;
    return { loss, gradNorm };
  }

  dispose(): void {
    this.opt.dispose();
    this.ema.dispose();
    this.model.dispose();
  }
}

/** Picks the live or the EMA weights by their NLL on the eval subset, saves them as gpt.safetensors and
 *  measures their NLL on the whole test split. */
function finish(run: RunDir, s: Session, d: ReturnType<typeof loadSplits>, evalSet: TokenCache, t0: number): TrainArResult {
  const { model, ema, o } = s;
  const evalNllLive = evaluateNLL(model, evalSet, o.evalBatch);
  ema.swap(model);
  const evalNllEma = evaluateNLL(model, evalSet, o.evalBatch);
  const weights = evalNllEma <= evalNllLive ? 'ema' : 'live';
  if (weights === 'live') ema.swap(model);
  const modelPath = run.path('gpt.safetensors');
  saveModel(modelPath, model, { ...s.meta, step: s.step, options: { ...o, weights } });
  const testNll = evalSet === d.test ? Math.min(evalNllLive, evalNllEma) : evaluateNLL(model, d.test, o.evalBatch);
  if (weights === 'ema') ema.swap(model);
  const base = unigramBaseline(d.train, d.test);
  const dims = imageDims(d.all.tokenizer);
  return {
    finished: true, runDir: run.dir, modelPath, step: s.step, seconds: (performance.now() - t0) / 1000, params: model.numParameters(),
    config: s.cfg, trainLoss: s.trainLoss, testNll, evalNllLive, evalNllEma, weights, bitsPerToken: testNll / Math.LN2,
    bitsPerDim: dims ? (testNll * d.all.seqLen) / Math.LN2 / dims : null, unigramEntropy: base.trainEntropy,
    unigramTestCrossEntropy: base.testCrossEntropy, tokenizer: d.all.tokenizer,
  };
}

/**
 * Trains (or, when `run` holds a checkpoint, resumes) a GPT on the token cache. The caller stores the options
 * in the run folder's run.json and passes them again on resume, so an interrupted run continues bit for bit.
 */
export function trainAR(run: RunDir, o: TrainArOptions, hooks: TrainArHooks = {}): TrainArResult {
  const t0 = performance.now();
  const d = loadSplits(o);
  const cfg = gptConfig(o.size, { vocabSize: d.all.codebookSize, numClasses: d.all.numClasses, gridH: d.all.grid[0],
    gridW: d.all.grid[1] }, o.model);
  const s = new Session(cfg, o, d.train, { kind: 'gpt', config: cfg, step: 0, options: o, tokenizer: d.all.tokenizer });
  try {
    if (s.restore(run)) run.log({ event: 'resume', step: s.step });
    else {
      run.log({ event: 'start', params: s.model.numParameters(), config: cfg, train: d.train.n, test: d.test.n, testFrom: d.test.path });
    }
    const evalSet = d.test.n > o.evalLimit ? sliceCache(d.test, 0, o.evalLimit, d.test.split ?? 'test') : d.test;
    const progress = new Progress(o.steps, 'train ar', { json: hooks.json, stream: hooks.progressStream });
    progress.tick(s.step);
    const stopAt = Math.min(o.steps, hooks.stopAfter ?? o.steps);
    let recent: number[] = [];
    while (s.step < stopAt) {
      const lr = s.lr(s.step);
      const { loss, gradNorm } = s.trainStep();
      recent.push(loss);
      progress.tick(1, { loss, lr });
      if (s.step % o.logEvery === 0 || s.step === stopAt) {
        const loss = recent.reduce((a, v) => a + v, 0) / recent.length;
        run.log({ step: s.step, loss, lr, gradNorm, seconds: (performance.now() - t0) / 1000 });
        recent = [];
      }
      if (o.evalEvery > 0 && s.step % o.evalEvery === 0 && s.step < o.steps) {
        run.log({ step: s.step, evalNll: evaluateNLL(s.model, evalSet, o.evalBatch), evalImages: evalSet.n });
      }
      if (s.step % o.ckptEvery === 0 || s.step === stopAt) s.save(run);
    }
    progress.done({ loss: s.trainLoss });
    if (s.step < o.steps) {
      return { finished: false, runDir: run.dir, modelPath: '', step: s.step, seconds: (performance.now() - t0) / 1000,
        params: s.model.numParameters(), config: cfg, trainLoss: s.trainLoss, testNll: NaN, evalNllLive: NaN, evalNllEma: NaN,
        weights: 'live', bitsPerToken: NaN, bitsPerDim: null, unigramEntropy: NaN, unigramTestCrossEntropy: NaN,
        tokenizer: d.all.tokenizer };
    }
    const result = finish(run, s, d, evalSet, t0);
    run.log({ event: 'done', ...result, config: undefined });
    return result;
  } finally {
    s.dispose();
  }
}
