// Training the domain feature network (lib/metrics/feature-net.ts) on the training split of a labelled
// 10-class dataset: cross-entropy, AdamW (weight decay on conv and linear weights only), linear warm-up then
// cosine decay, gradient clipping, optional random ±shift-pixel translations, a fixed seed (the run is
// deterministic on the CPU). Afterwards the whole train and test splits go through the network once: top-1
// accuracies, and the float64 mean and unbiased covariance of the features of each split, written next to
// the weights as <name>-stats.npz. The weights file's meta records the dataset, the recipe (every option),
// the accuracies and the weights' sha256 (weightsSha256). Letters: B batch, F feature width.
import { mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import { backward } from '../autograd/tape.js';
import { crossEntropy } from '../tensor/ops/softmax.js';
import { AdamW, clipGradNorm, cosineSchedule } from '../nn/optim.js';
import { Batcher, labelBatch, loadDataset, type ImageDataset } from '../data/dataset.js';
import { loadModelFile, saveModel, saveState } from '../io/checkpoint.js';
import { writeNpz } from '../io/npz.js';
import { Progress } from '../io/progress.js';
import {
  extractFeatures, FEATURE_DIM, loadFeatureNet, readFeatureStats, FEATURE_NET_CLASSES, FEATURE_NET_KIND, FEATURE_NET_SIZE, FeatureNet, meanCov, weightsSha256,
  type FeatureNetRecord, type SplitStats,
} from '../metrics/feature-net.js';
import { frechetDistance } from '../metrics/fid.js';

export interface TrainFeatureNetOptions {
  /** 'mnist', 'fashion-mnist' or a folder of PNGs with 10 classes (converted to 1 channel, resized to 28x28) */
  dataset: string;
  /** basename of the output files: <name>.safetensors and <name>-stats.npz (default: the dataset name) */
  name: string;
  epochs: number;
  batchSize: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  betas: [number, number];
  clip: number;
  /** random translation of each training image by up to ±shift pixels in x and y (0 = none) */
  shift: number;
  seed: number;
  /** training images used (the first n; 0 = all) and test images evaluated (0 = all) */
  trainLimit: number;
  evalLimit: number;
  evalBatch: number;
}

/**
 * Defaults (the MNIST recipe; Fashion-MNIST used --epochs 5). Measured 2026-11-26 on the shared 2-core CPU:
 * MNIST, 3 epochs = 2811 steps of 64 in 306 s (9.2 steps/s at load ~4), test accuracy 99.32%. The shipped
 * runs and their numbers are in assets/featnet/README.md.
 */
export const defaultTrainFeatureNetOptions: TrainFeatureNetOptions = {
  dataset: 'mnist', name: '', epochs: 3, batchSize: 64, lr: 2e-3, minLr: 2e-5, warmup: 100, weightDecay: 0.05,
  betas: [0.9, 0.999], clip: 1.0, shift: 0, seed: 0, trainLimit: 0, evalLimit: 0, evalBatch: 500,
};

export interface TrainFeatureNetHooks {
  json?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** called every logEvery steps with the mean loss and accuracy of those steps */
  onLog?: (e: { step: number; epoch: number; loss: number; accuracy: number; lr: number; gradNorm: number; seconds: number }) => void;
  logEvery?: number;
  /** skip the final statistics pass (tests) */
  skipStats?: boolean;
}

export interface TrainFeatureNetResult {
  modelPath: string; statsPath: string | null; steps: number; params: number; seconds: number; trainSeconds: number;
  trainLoss: number; testAccuracy: number; trainAccuracy: number | null; testImages: number; trainImages: number;
  sha256: string;
  /** the trained network (eval mode); the caller disposes it */
  net: FeatureNet;
  /** feature statistics of the (limited) train and test splits; null with skipStats */
  stats: { train: SplitStats; test: SplitStats } | null;
  /** real-versus-real floors (see measureFloors); null with skipStats or when they could not be measured */
  floors: Record<string, number> | null;
  /** why the floors are missing although statistics were computed */
  floorsError?: string;
}

/** The default output basename for a dataset: 'mnist', 'fashion-mnist', or the folder's base name. */
export function featnetName(dataset: string): string {
  const k = dataset.toLowerCase();
  return k === 'mnist' || k === 'fashion-mnist' ? k : basename(resolve(dataset));
}

/** Loads one split as 1-channel 28x28 and checks it has labels in [0, 10). */
export async function loadFeatnetSplit(dataset: string, split: 'train' | 'test', limit: number): Promise<ImageDataset> {
  const ds = await loadDataset(dataset, split, { size: FEATURE_NET_SIZE, channels: 1, limit: limit > 0 ? limit : undefined });
  if (!ds.labels || ds.numClasses < 2 || ds.numClasses > FEATURE_NET_CLASSES) {
    throw new Error(`dd2: train featnet: dataset '${dataset}' (${split}) needs labels of 2 to ${FEATURE_NET_CLASSES} classes, ` +
      `got ${ds.labels ? ds.numClasses + ' classes' : 'no labels'}`);
  }
  return ds;
}

/** sfc32-style 32-bit generator for the augmentation (host side, seeded, reproducible). */
function hostRng(seed: number): () => number {
  let a = seed >>> 0, b = Math.floor(seed / 2 ** 32) >>> 0, c = 0x9e3779b9, d = 0x85ebca6b;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

/**
 * Images idx of a 1-channel 28x28 dataset as float32 (B, 1, 28, 28) in [-1, 1], each translated by
 * (dx, dy) drawn uniformly from [-shift, shift]² by rnd (pixels shifted in from outside are background, -1).
 */
export function shiftedBatch(ds: ImageDataset, idx: Int32Array, shift: number, rnd: () => number): Float32Array {
  const S = FEATURE_NET_SIZE, img = S * S, out = new Float32Array(idx.length * img);
  for (let b = 0; b < idx.length; b++) {
    const src = ds.images.subarray(idx[b] * img, (idx[b] + 1) * img), dst = out.subarray(b * img, (b + 1) * img);
    const dx = shift > 0 ? (rnd() % (2 * shift + 1)) - shift : 0, dy = shift > 0 ? (rnd() % (2 * shift + 1)) - shift : 0;
    for (let y = 0; y < S; y++) {
      const sy = y - dy;
      for (let x = 0; x < S; x++) {
        const sx = x - dx;
        dst[y * S + x] = sy >= 0 && sy < S && sx >= 0 && sx < S ? src[sy * S + sx] / 127.5 - 1 : -1;
      }
    }
  }
  return out;
}

/** Top-1 accuracy of class probabilities (N x 10) against labels. */
export function accuracyOf(probs: Float32Array, labels: Int32Array): number {
  const K = FEATURE_NET_CLASSES, n = labels.length;
  let right = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (probs[i * K + k] > probs[i * K + best]) best = k;
    if (best === labels[i]) right++;
  }
  return right / n;
}

/** σ of the Gaussian pixel noise of the second floor, in [-1, 1] pixel units (0.05 of the 0..1 range). */
export const FLOOR_NOISE_SIGMA = 0.1;

/**
 * Real-versus-real floors in the network's feature space (DATA-EVAL.md §4.1), which calibrate its dFID scale:
 *   dfid_train10k_test: the first min(10,000, n) training images against the test split;
 *   dfid_test_noise0.1: the test split with N(0, 0.1²) noise added to every pixel ([-1, 1] units, clipped to
 *     [-1, 1]; noise from Generator(seed + 2)) against the clean test split.
 * Each is also given with its N (n_*).
 */
export function measureFloors(net: FeatureNet, test: ImageDataset, testStats: SplitStats, trainFeatures: Float32Array, seed: number,
  batch = 500): Record<string, number> {
  const F = FEATURE_DIM, nTrain = Math.min(10_000, trainFeatures.length / F);
  const sub10k = meanCov(trainFeatures.subarray(0, nTrain * F), nTrain, F);
  const img = FEATURE_NET_SIZE * FEATURE_NET_SIZE;
  const noise = noGrad(() => { const t = new Generator(seed + 2).normal([test.n * img], 'cpu'); const v = t.toFloat32Array(); t.dispose(); return v; });
  const noisy = new Float32Array(test.n * img);
  for (let i = 0; i < noisy.length; i++) noisy[i] = Math.min(1, Math.max(-1, test.images[i] / 127.5 - 1 + FLOOR_NOISE_SIGMA * noise[i]));
  const nf = extractFeatures(net, { data: noisy, n: test.n, layout: 'NCHW-f32' }, batch).features;
  return {
    dfid_train10k_test: frechetDistance(sub10k, testStats), n_train10k: nTrain, n_test: test.n,
    'dfid_test_noise0.1': frechetDistance(meanCov(nf, test.n, F), testStats),
  };
}

/**
 * Measures the floors (measureFloors) of an existing feature-network file with its recorded dataset, seed
 * and statistics file, and rewrites the file's meta with them (the weights, hence their sha256, are
 * unchanged). For files written where lib/metrics/fid.ts could not run.
 */
export async function addFloorsToFile(path: string, evalBatch = 500): Promise<Record<string, number>> {
  const { net, meta } = loadFeatureNet(path);
  try {
    const recipe = JSON.parse(meta.recipe) as TrainFeatureNetOptions;
    const test = await loadFeatnetSplit(meta.dataset, 'test', recipe.evalLimit);
    const train = await loadFeatnetSplit(meta.dataset, 'train', Math.min(10_000, recipe.trainLimit > 0 ? recipe.trainLimit : 10_000));
    const trainFeatures = extractFeatures(net, { data: train.images, n: train.n, layout: 'NHWC-u8' }, evalBatch).features;
    const floors = measureFloors(net, test, readFeatureStats(meta.statsPath, 'test'), trainFeatures, recipe.seed, evalBatch);
    const file = loadModelFile(meta.path);
    const opts = file.meta.options as { featnet: FeatureNetRecord };
    saveState(meta.path, file.state, file.shapes, { ...file.meta, options: { ...opts, featnet: { ...opts.featnet, floors } } });
    return floors;
  } finally {
    net.dispose();
  }
}

function optimizerFor(net: FeatureNet, o: TrainFeatureNetOptions): AdamW {
  const named = net.namedParameters();
  const decay = named.filter(([, p]) => p.rank >= 2).map(([, p]) => p);
  const rest = named.filter(([, p]) => p.rank < 2).map(([, p]) => p);
  return new AdamW([{ params: decay }, { params: rest, weightDecay: 0 }], { lr: o.lr, betas: o.betas, weightDecay: o.weightDecay });
}

/**
 * Trains a feature network and writes <outDir>/<name>.safetensors and (unless hooks.skipStats)
 * <outDir>/<name>-stats.npz with mu_train, sigma_train, mu_test, sigma_test (float64) and n_train, n_test
 * (int32). The meta also records the real-versus-real floors (measureFloors).
 */
export async function trainFeatureNet(outDir: string, o: TrainFeatureNetOptions, hooks: TrainFeatureNetHooks = {}):
  Promise<TrainFeatureNetResult> {
  const t0 = performance.now();
  const name = o.name || featnetName(o.dataset);
  const train = await loadFeatnetSplit(o.dataset, 'train', o.trainLimit);
  const test = await loadFeatnetSplit(o.dataset, 'test', o.evalLimit);
  const net = new FeatureNet(o.seed);
  const opt = optimizerFor(net, o);
  try {
    const batcher = new Batcher(train.n, o.batchSize, { seed: o.seed, shuffle: true, dropLast: train.n >= o.batchSize });
    const steps = o.epochs * batcher.batchesPerEpoch;
    const lr = cosineSchedule({ warmup: Math.min(o.warmup, steps), total: steps, base: o.lr, min: Math.min(o.minLr, o.lr) });
    const rnd = hostRng(o.seed + 1);
    const params = net.parameters(), logEvery = hooks.logEvery ?? 100;
    const progress = new Progress(steps, `train featnet ${name}`, { json: hooks.json, stream: hooks.progressStream });
    let sumLoss = 0, sumAcc = 0, count = 0, trainLoss = NaN;
    const tTrain = performance.now();
    net.train();
    for (let step = 0; step < steps; step++) {
      opt.setLr(lr(step));
      const idx = batcher.next();
      const { loss, acc } = tidy(() => {
        const x = tensor(shiftedBatch(train, idx, o.shift, rnd), [idx.length, 1, FEATURE_NET_SIZE, FEATURE_NET_SIZE]);
        const y = labelBatch(train, idx);
        const logits = net.forward(x).logits;
        const l = crossEntropy(logits, y);
        backward(l);
        const p = logits.toFloat32Array();
        return { loss: l.item(), acc: accuracyOf(p, y.toInt32Array()) };
      });
      const gradNorm = clipGradNorm(params, o.clip);
      opt.step();
      opt.zeroGrad();
      if (!Number.isFinite(loss)) throw new Error(`dd2: train featnet: the loss became ${loss} at step ${step + 1}; lower --lr`);
      sumLoss += loss; sumAcc += acc; count++;
      progress.tick(1, { loss, acc });
      if ((step + 1) % logEvery === 0 || step + 1 === steps) {
        trainLoss = sumLoss / count;
        hooks.onLog?.({ step: step + 1, epoch: batcher.epoch, loss: trainLoss, accuracy: sumAcc / count, lr: lr(step), gradNorm,
          seconds: (performance.now() - t0) / 1000 });
        sumLoss = 0; sumAcc = 0; count = 0;
      }
    }
    progress.done({ loss: trainLoss });
    const trainSeconds = (performance.now() - tTrain) / 1000;
    net.eval();

    const testOut = extractFeatures(net, { data: test.images, n: test.n, layout: 'NHWC-u8' }, o.evalBatch);
    const testAccuracy = accuracyOf(testOut.probs, test.labels!);
    let trainFeatures: { features: Float32Array; probs: Float32Array } | null = null;
    let trainAccuracy: number | null = null, stats: TrainFeatureNetResult['stats'] = null, floors: Record<string, number> | null = null;
    mkdirSync(outDir, { recursive: true });
    const modelPath = join(resolve(outDir), `${name}.safetensors`), statsName = `${name}-stats.npz`;
    let statsPath: string | null = null;
    if (!hooks.skipStats) {
      trainFeatures = extractFeatures(net, { data: train.images, n: train.n, layout: 'NHWC-u8' }, o.evalBatch);
      trainAccuracy = accuracyOf(trainFeatures.probs, train.labels!);
      stats = { train: meanCov(trainFeatures.features, train.n, FEATURE_DIM), test: meanCov(testOut.features, test.n, FEATURE_DIM) };
      statsPath = join(resolve(outDir), statsName);
      writeNpz(statsPath, {
        mu_train: { dtype: 'float64', shape: [FEATURE_DIM], data: stats.train.mu },
        sigma_train: { dtype: 'float64', shape: [FEATURE_DIM, FEATURE_DIM], data: stats.train.sigma },
        mu_test: { dtype: 'float64', shape: [FEATURE_DIM], data: stats.test.mu },
        sigma_test: { dtype: 'float64', shape: [FEATURE_DIM, FEATURE_DIM], data: stats.test.sigma },
        n_train: { dtype: 'int32', shape: [1], data: Int32Array.of(train.n) },
        n_test: { dtype: 'int32', shape: [1], data: Int32Array.of(test.n) },
      }, { compress: true });
    }
    const sha256 = weightsSha256(net.stateDict(), net.stateShapes());
    const record: FeatureNetRecord = {
      dataset: o.dataset, sha256, testAccuracy, ...(trainAccuracy !== null ? { trainAccuracy } : {}), recipe: JSON.stringify(o),
      stats: statsName, params: net.numParameters(),
    };
    const meta = { kind: FEATURE_NET_KIND, config: { featureDim: FEATURE_DIM, size: FEATURE_NET_SIZE, classes: FEATURE_NET_CLASSES },
      step: steps, options: { featnet: record } };
    saveModel(modelPath, net, meta);
    // The floors need lib/metrics/fid.ts (a BLAS-backed eigensolver); the weights and statistics are written
    // first so a failure here loses nothing: `dd2 train featnet --floors <file>` measures them later.
    let floorsError: string | undefined;
    if (stats && trainFeatures) {
      try {
        floors = measureFloors(net, test, stats.test, trainFeatures.features, o.seed, o.evalBatch);
        saveModel(modelPath, net, { ...meta, options: { featnet: { ...record, floors } } });
      } catch (e) {
        floorsError = (e as Error).message;
      }
    }
    return {
      modelPath, statsPath, steps, params: net.numParameters(), seconds: (performance.now() - t0) / 1000, trainSeconds, trainLoss,
      testAccuracy, trainAccuracy, testImages: test.n, trainImages: train.n, sha256, net, stats, floors, ...(floorsError ? { floorsError } : {}),
    };
  } catch (e) {
    net.dispose();
    throw e;
  } finally {
    opt.dispose();
  }
}
