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
import { readSafetensors } from '../io/safetensors.js';
import { loadModelFile, restoreTrainingState, saveModel, type RunDir } from '../io/checkpoint.js';
import { Progress } from '../io/progress.js';
import { Batcher, type BatcherState } from '../data/dataset.js';
import { GPT, gptConfig, type GPTConfig } from '../models/gpt.js';

/** A token cache: tokens (n, N) int32, labels (n) int32, and what the cache says about itself. */
export interface TokenCache {
  path: string; n: number; seqLen: number; grid: [number, number]; codebookSize: number; numClasses: number;
  tokens: Int32Array; labels: Int32Array; tokenizer?: string; dataset?: string; split?: string;
}

/** Reads a cache written by `dd2 encode` (safetensors 'tokens' I32 (n, h·w), 'labels' I32 (n), '__dd2__' meta). */
export function readTokenCache(path: string): TokenCache {
  const { arrays, metadata } = readSafetensors(path);
  const t = arrays.get('tokens'), l = arrays.get('labels');
  let meta: Record<string, unknown> = {};
  try { meta = JSON.parse(metadata.__dd2__ ?? '{}'); } catch { /* checked below */ }
  if (!t || t.dtype !== 'I32' || t.shape.length !== 2 || !l || l.dtype !== 'I32' || l.shape[0] !== t.shape[0] ||
      meta.kind !== 'tokens' || !Array.isArray(meta.grid)) {
    throw new Error(`dd2: ${path} is not a token cache (need I32 'tokens' (n, h*w), I32 'labels' (n) and ` +
      `'__dd2__' metadata of kind 'tokens' with a grid; write one with dd2 encode)`);
  }
  const [n, N] = t.shape, grid = meta.grid as [number, number];
  if (grid[0] * grid[1] !== N) throw new Error(`dd2: ${path}: grid ${grid.join('x')} does not match ${N} tokens per image`);
  const tokens = t.data as Int32Array, labels = l.data as Int32Array;
  const K = Number(meta.codebookSize), C = Number(meta.numClasses);
  for (const v of tokens) if (!(v >= 0 && v < K)) throw new Error(`dd2: ${path}: token ${v} outside the codebook [0, ${K})`);
  for (const v of labels) if (!(v >= 0 && v < C)) throw new Error(`dd2: ${path}: label ${v} outside [0, ${C})`);
  return { path, n, seqLen: N, grid, codebookSize: K, numClasses: C, tokens, labels, tokenizer: meta.tokenizer as string | undefined,
    dataset: meta.dataset as string | undefined, split: meta.split as string | undefined };
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
function batchOf(c: TokenCache, idx: Int32Array): { toks: Int32Array; labs: Int32Array } {
  const N = c.seqLen, toks = new Int32Array(idx.length * N), labs = new Int32Array(idx.length);
  idx.forEach((r, b) => { toks.set(c.tokens.subarray(r * N, (r + 1) * N), b * N); labs[b] = c.labels[r]; });
  return { toks, labs };
}

/** Mean NLL per token (nats) of the model on a cache, teacher-forced, in eval mode, batches of `batch`. */
export function evaluateNLL(model: GPT, c: TokenCache, batch = 256): number {
  const was = model.training;
  model.eval();
  let sum = 0;
  try {
    for (let s = 0; s < c.n; s += batch) {
      const idx = Int32Array.from({ length: Math.min(batch, c.n - s) }, (_, i) => s + i);
      const { toks, labs } = batchOf(c, idx);
      sum += noGrad(() => tidy(() => {
        const t = tensor(toks, [idx.length, c.seqLen]);
        return crossEntropy(model.logitsForImages(tensor(labs, [idx.length]), t), t, { reduction: 'sum' }).item();
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

export const defaultTrainArOptions: Omit<TrainArOptions, 'tokens'> = {
  size: 'tiny', steps: 1500, batchSize: 64, accum: 1, lr: 2e-3, minLr: 1e-4, warmup: 100, weightDecay: 0.05,
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
  trainLoss: number; testNll: number; testNllLive: number; testNllEma: number; weights: 'ema' | 'live';
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

/**
 * Trains (or, when `run` holds a checkpoint, resumes) a GPT on the token cache. Options are stored in the
 * run folder's run.json by the caller; resuming uses them, so an interrupted run continues bit for bit.
 */
export function trainAR(run: RunDir, o: TrainArOptions, hooks: TrainArHooks = {}): TrainArResult {
  const t0 = performance.now();
  const train = readTokenCache(o.tokens);
  const testPath = o.testTokens ?? defaultTestTokens(o.tokens);
  let test: TokenCache;
  let trainSet = train;
  if (testPath) test = readTokenCache(testPath);
  else {
    // No test cache: hold out the last 10% of the training rows (logged).
    const cut = train.n - Math.max(1, Math.floor(train.n / 10));
    trainSet = sliceCache(train, 0, cut, 'train'); test = sliceCache(train, cut, train.n, 'held-out');
  }
  if (test.seqLen !== train.seqLen || test.codebookSize !== train.codebookSize) {
    throw new Error(`dd2: train ar: test cache ${test.path} (${test.seqLen} tokens, K ${test.codebookSize}) does not match ` +
      `${train.path} (${train.seqLen}, K ${train.codebookSize})`);
  }
  const cfg = gptConfig(o.size, { vocabSize: train.codebookSize, numClasses: train.numClasses, gridH: train.grid[0],
    gridW: train.grid[1] }, o.model);
  const gen = new Generator(o.seed);
  const model = new GPT(cfg, gen);
  const opt = optimizerFor(model, o);
  const ema = new EMA(model, o.emaDecay);
  const lr = cosineSchedule({ warmup: Math.min(o.warmup, o.steps), total: o.steps, base: o.lr, min: Math.min(o.minLr, o.lr) });
  let batcher = new Batcher(trainSet.n, o.batchSize, { seed: o.seed, shuffle: true, dropLast: trainSet.n >= o.batchSize });
  let step = 0, rng = gen, trainLoss = NaN;
  const meta = { kind: 'gpt', config: cfg, step: 0, options: o, tokenizer: train.tokenizer };
  const prev = run.loadTrainingState('ar');
  if (prev) {
    restoreTrainingState(prev, { module: model, optimizer: opt, ema });
    const s = prev as unknown as Saved;
    step = prev.step;
    if (s.rng) rng = Generator.fromState(s.rng);
    if (s.batcher) batcher = Batcher.fromState(trainSet.n, o.batchSize, s.batcher, { shuffle: true, dropLast: batcher.dropLast });
    trainLoss = s.extra?.trainLoss ?? NaN;
    run.log({ event: 'resume', step });
  } else {
    run.log({ event: 'start', params: model.numParameters(), config: cfg, train: trainSet.n, test: test.n, testFrom: test.path });
  }
  const save = (): void => {
    run.saveTrainingState('ar', { module: model, optimizer: opt, ema, step, rng: rng.state(), batcher: batcher.state(),
      meta: { ...meta, step }, extra: { trainLoss } });
  };
  const evalSet = test.n > o.evalLimit ? sliceCache(test, 0, o.evalLimit, test.split ?? 'test') : test;
  const progress = new Progress(o.steps, 'train ar', { json: hooks.json, stream: hooks.progressStream });
  progress.tick(step);
  const stopAt = Math.min(o.steps, hooks.stopAfter ?? o.steps);
  let recent: number[] = [];
  const params = model.parameters();
  try {
    while (step < stopAt) {
      opt.setLr(lr(step));
      let loss = 0;
      for (let a = 0; a < o.accum; a++) {
        const { toks, labs } = batchOf(trainSet, batcher.next());
        loss += tidy(() => {
          const t = tensor(toks, [labs.length, trainSet.seqLen]);
          const l = crossEntropy(model.logitsForImages(tensor(labs, [labs.length]), t, rng), t);
          backward(o.accum > 1 ? mulScalar(l, 1 / o.accum) : l);
          return l.item();
        }) / o.accum;
      }
      const gradNorm = clipGradNorm(params, o.clip);
      opt.step();
      opt.zeroGrad();
      ema.update(Math.min(o.emaDecay, (1 + ema.updates) / (10 + ema.updates)));
      step++;
      recent.push(loss);
      trainLoss = loss;
      progress.tick(1, { loss, lr: lr(step - 1) });
      if (step % o.logEvery === 0 || step === stopAt) {
        const mean = recent.reduce((s, v) => s + v, 0) / recent.length;
        run.log({ step, loss: mean, lr: lr(step - 1), gradNorm, seconds: (performance.now() - t0) / 1000 });
        recent = [];
      }
      if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < o.steps) {
        run.log({ step, testNll: evaluateNLL(model, evalSet, o.evalBatch) });
      }
      if (step % o.ckptEvery === 0 || step === stopAt) save();
    }
    progress.done({ loss: trainLoss });
    if (step < o.steps) {
      return { finished: false, runDir: run.dir, modelPath: '', step, seconds: (performance.now() - t0) / 1000,
        params: model.numParameters(), config: cfg, trainLoss, testNll: NaN, testNllLive: NaN, testNllEma: NaN, weights: 'live',
        bitsPerToken: NaN, bitsPerDim: null, unigramEntropy: NaN, unigramTestCrossEntropy: NaN, tokenizer: train.tokenizer };
    }
    const testNllLive = evaluateNLL(model, test, o.evalBatch);
    ema.swap(model);
    const testNllEma = evaluateNLL(model, test, o.evalBatch);
    const weights = testNllEma <= testNllLive ? 'ema' : 'live';
    if (weights === 'live') ema.swap(model);
    const testNll = Math.min(testNllEma, testNllLive);
    const base = unigramBaseline(trainSet, test);
    const dims = imageDims(train.tokenizer);
    const modelPath = run.path('gpt.safetensors');
    saveModel(modelPath, model, { ...meta, step, options: { ...o, weights } });
    if (weights === 'ema') ema.swap(model);
    const result: TrainArResult = {
      finished: true, runDir: run.dir, modelPath, step, seconds: (performance.now() - t0) / 1000, params: model.numParameters(), config: cfg,
      trainLoss, testNll, testNllLive, testNllEma, weights, bitsPerToken: testNll / Math.LN2,
      bitsPerDim: dims ? (testNll * train.seqLen) / Math.LN2 / dims : null, unigramEntropy: base.trainEntropy,
      unigramTestCrossEntropy: base.testCrossEntropy, tokenizer: train.tokenizer,
    };
    run.log({ event: 'done', ...result, config: undefined });
    return result;
  } finally {
    opt.dispose();
    ema.dispose();
    model.dispose();
  }
}
