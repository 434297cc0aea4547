// The domain feature network (DATA-EVAL.md §4.1): a small CNN classifier trained by the project on the
// training split of MNIST or Fashion-MNIST, whose 256-d penultimate layer is the feature space of the
// "domain" metrics (dFID, dIS, dPrecision/dRecall, class accuracy) and whose conv activations give the
// LPIPS-style distance of dPPL. Trained by lib/train/feature-net.ts (`dd2 train featnet`); the shipped
// weights and their reference statistics live in assets/featnet/ (README.md there has the recipe).
//
// Graph, on images (B, 1, 28, 28) in [-1, 1] (other sizes: resize to 28x28 first, lib/data/resize.ts):
//   conv1 3x3 (1 -> 32), relu                 (B, 32, 28, 28)   act 0
//   conv2 3x3 stride 2 (32 -> 64), relu       (B, 64, 14, 14)   act 1
//   conv3 3x3 stride 2 (64 -> 96), relu       (B, 96, 7, 7)     act 2
//   conv4 3x3 stride 2 (96 -> 64), relu       (B, 64, 4, 4)     act 3
//   flatten                                   (B, 1024)
//   fc linear (1024 -> 256), relu             (B, F = 256)      features
//   head linear (256 -> 10)                   (B, 10)           logits
// A first version pooled the last conv by a global mean (no flatten); without a norm layer it learned far
// more slowly (MNIST 91.6% test after 400 steps of 64), so the spatial layout goes into fc instead.
// All convs pad 1. Letters: B batch, F = FEATURE_DIM, C channels, H/W height/width.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tensor } from '../tensor/create.js';
import type { Device } from '../tensor/dtype.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { fmtShape } from '../tensor/shape.js';
import { add, addScalar, div, relu, sqrt, square, sub } from '../tensor/ops/elementwise.js';
import { mean, sum } from '../tensor/ops/reduce.js';
import { reshape } from '../tensor/ops/shape.js';
import { softmax } from '../tensor/ops/softmax.js';
import { conv2d } from '../tensor/ops/conv.js';
import { zeros } from '../tensor/create.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { normal } from '../nn/init.js';
import { loadModelFile, type CheckpointMeta } from '../io/checkpoint.js';
import { readNpz } from '../io/npz.js';

/** Width of the feature vector (the penultimate layer). */
export const FEATURE_DIM = 256;
/** Input side and class count the network is built for. */
export const FEATURE_NET_SIZE = 28;
export const FEATURE_NET_CLASSES = 10;
/** The CheckpointMeta kind of a feature-network file. */
export const FEATURE_NET_KIND = 'featnet';

/** [cin, cout, stride] of the four 3x3 convs, and the side of the last map (28 -> 28 -> 14 -> 7 -> 4). */
const CONVS: readonly (readonly [number, number, number])[] = [[1, 32, 1], [32, 64, 2], [64, 96, 2], [96, 64, 2]];
const LAST_SIDE = 4;

/** A 3x3 conv, padding 1, with He (Kaiming normal) init for a following relu: weight (Cout, Cin, 3, 3) ~
 *  N(0, 2 / (Cin·9)), bias 0. (PyTorch's default U(±1/sqrt(fan_in)) shrinks the signal about 6x per layer
 *  without a norm, which made the first epoch markedly slower.) */
export class Conv3x3 extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly cin: number, readonly cout: number, readonly stride: number, gen: Generator) {
    super();
    this.weight = this.registerParameter('weight', normal([cout, cin, 3, 3], Math.sqrt(2 / (cin * 9)), 0, gen));
    this.bias = this.registerParameter('bias', zeros([cout]));
  }

  /** x (B, Cin, H, W) -> (B, Cout, ceil(H / stride), ceil(W / stride)) */
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: 1 });
  }
}

export class FeatureNet extends Module {
  readonly convs: Conv3x3[];
  readonly fc: Linear;
  readonly head: Linear;

  /** Weights drawn from Generator(seed): He init for the convs, PyTorch's default for the two linears. */
  constructor(seed = 0) {
    super();
    const gen = new Generator(seed);
    this.convs = CONVS.map(([cin, cout, stride], i) => this.registerModule(`conv${i + 1}`, new Conv3x3(cin, cout, stride, gen)));
    const flat = CONVS[CONVS.length - 1][1] * LAST_SIDE * LAST_SIDE;
    this.fc = this.registerModule('fc', new Linear(flat, FEATURE_DIM, { gen }));
    this.head = this.registerModule('head', new Linear(FEATURE_DIM, FEATURE_NET_CLASSES, { gen }));
  }

  /** x (B, 1, 28, 28) in [-1, 1] → features (B, F), logits (B, 10), and the four post-relu conv activations
   *  (B, C, H, W) used by perceptualDistance (dPPL). */
  forward(x: Tensor): { features: Tensor; logits: Tensor; acts: Tensor[] } {
    const S = FEATURE_NET_SIZE;
    if (x.rank !== 4 || x.shape[1] !== 1 || x.shape[2] !== S || x.shape[3] !== S) {
      throw new RangeError(`dd2: FeatureNet: input must be (B, 1, ${S}, ${S}) in [-1, 1], got ${fmtShape(x.shape)} ` +
        `(resize other sizes to ${S}x${S} first, e.g. with lib/data/resize.ts)`);
    }
    const acts: Tensor[] = [];
    let h = x;
    for (const c of this.convs) {
      h = relu(c.forward(h));
      acts.push(h);
    }
    const features = relu(this.fc.forward(reshape(h, [h.shape[0], this.fc.inFeatures])));
    return { features, logits: this.head.forward(features), acts };
  }
}

// ------------------------------------------------------------------------------------------------
// Files: weights (safetensors with a CheckpointMeta of kind 'featnet') and reference statistics (.npz).

/** What the meta of a feature-network file records (options.featnet of its CheckpointMeta). */
export interface FeatureNetRecord {
  dataset: string;
  /** sha256 of the weights: see weightsSha256 */
  sha256: string;
  /** top-1 accuracy on the full test split (10,000 images) */
  testAccuracy: number;
  trainAccuracy?: number;
  /** the training options, as the JSON text of lib/train/feature-net.ts TrainFeatureNetOptions */
  recipe: string;
  /** basename of the statistics file next to the weights */
  stats: string;
  /** real-versus-real floors in this feature space (absent if they were not measured) */
  floors?: Record<string, number>;
  params: number;
}

export interface FeatureNetMeta {
  dataset: string; sha256: string; testAccuracy: number; recipe: string;
  /** absolute path of the weights file */
  path: string;
  /** the shipped .npz with mu_train, sigma_train, mu_test, sigma_test (float64) and n_train, n_test */
  statsPath: string;
  floors?: Record<string, number>;
}

/**
 * sha256 (hex) of a network's weights: the float32 little-endian bytes of every state-dict entry, in
 * name order (sorted by code unit), each preceded by "<name>:<shape joined by x>\n". It depends only on
 * the values, not on the file layout, so it can be stored in the file's own metadata.
 */
export function weightsSha256(state: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): string {
  const h = createHash('sha256');
  for (const name of [...state.keys()].sort()) {
    const data = state.get(name)!;
    h.update(`${name}:${(shapes.get(name) ?? [data.length]).join('x')}\n`);
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));   // little-endian hosts only (x86, arm)
  }
  return h.digest('hex');
}

/** The folder of the shipped files: assets/featnet at the package root, found from lib/metrics (tests, tsx)
 *  or dist/lib/metrics (the built CLI). */
export function featnetAssetsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '../../assets/featnet'), resolve(here, '../../../assets/featnet')];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`dd2: the shipped feature networks are missing (looked for ${candidates.join(', ')}); ` +
    'reinstall dd2 or train one with `dd2 train featnet`');
}

const SHIPPED = ['mnist', 'fashion-mnist'] as const;
type Shipped = typeof SHIPPED[number];

/** Path of a shipped file: <dataset>.safetensors or <dataset>-stats.npz. */
export function shippedPath(dataset: Shipped, what: 'weights' | 'stats'): string {
  return resolve(featnetAssetsDir(), what === 'weights' ? `${dataset}.safetensors` : `${dataset}-stats.npz`);
}

/**
 * Loads a feature network: 'mnist' or 'fashion-mnist' (the shipped weights) or the path of a .safetensors
 * written by `dd2 train featnet`. Checks the recorded sha256 against the weights (a mismatch throws: a
 * changed network invalidates every number measured with it). The network is in eval mode on the default
 * device; the caller disposes it.
 */
export function loadFeatureNet(which: 'mnist' | 'fashion-mnist' | string): { net: FeatureNet; meta: FeatureNetMeta } {
  const path = (SHIPPED as readonly string[]).includes(which) ? shippedPath(which as Shipped, 'weights') : resolve(which);
  if (!existsSync(path)) {
    throw new Error(`dd2: loadFeatureNet: '${which}' is neither 'mnist', 'fashion-mnist' nor an existing .safetensors file`);
  }
  const file = loadModelFile(path);
  const rec = featnetRecord(file.meta, path);
  const sha = weightsSha256(file.state, file.shapes);
  if (sha !== rec.sha256) {
    throw new Error(`dd2: loadFeatureNet: ${path}: the weights' sha256 ${sha} differs from the recorded ${rec.sha256}; ` +
      'the file was altered or corrupted');
  }
  const net = new FeatureNet(0);
  try {
    net.loadStateDict(new Map([...file.state].map(([k, data]) => [k, { shape: file.shapes.get(k) ?? [data.length], data }])));
  } catch (e) {
    net.dispose();
    throw new Error(`dd2: loadFeatureNet: ${path} does not fit FeatureNet: ${(e as Error).message}`);
  }
  net.eval();
  const meta: FeatureNetMeta = { dataset: rec.dataset, sha256: rec.sha256, testAccuracy: rec.testAccuracy, recipe: rec.recipe, path,
    statsPath: resolve(dirname(path), rec.stats), floors: rec.floors };
  return { net, meta };
}

function featnetRecord(meta: CheckpointMeta, path: string): FeatureNetRecord {
  const rec = (meta.options as { featnet?: FeatureNetRecord } | undefined)?.featnet;
  if (meta.kind !== FEATURE_NET_KIND || !rec || typeof rec.sha256 !== 'string' || typeof rec.dataset !== 'string') {
    throw new Error(`dd2: loadFeatureNet: ${path} is a '${meta.kind}' checkpoint, not a feature network written by ` +
      '`dd2 train featnet` (kind \'featnet\' with options.featnet)');
  }
  return rec;
}

/** Mean and unbiased covariance (float64, F x F row-major) of the features of one split, and their count
 *  (the shape of lib/metrics/fid.ts FeatureStats with n present). */
export interface SplitStats { mu: Float64Array; sigma: Float64Array; n: number }

/**
 * Mean and unbiased (n - 1) covariance, in float64, of n feature rows (n x F row-major), on the host in
 * plain JS (two passes: the mean, then the centred products), so the shipped statistics do not depend on
 * a BLAS. np.cov(features, rowvar=False) computes the same.
 */
export function meanCov(features: Float32Array | Float64Array, n: number, F: number): SplitStats {
  if (features.length !== n * F) throw new RangeError(`dd2: meanCov: ${features.length} values are not ${n} rows of ${F}`);
  if (n < 2) throw new RangeError(`dd2: meanCov: the covariance needs at least 2 rows, got ${n}`);
  const mu = new Float64Array(F), sigma = new Float64Array(F * F), row = new Float64Array(F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) mu[j] += features[i * F + j];
  for (let j = 0; j < F; j++) mu[j] /= n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < F; j++) row[j] = features[i * F + j] - mu[j];
    for (let a = 0; a < F; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      const o = a * F;
      for (let b = a; b < F; b++) sigma[o + b] += ra * row[b];
    }
  }
  for (let a = 0; a < F; a++) {
    for (let b = a; b < F; b++) {
      const v = sigma[a * F + b] / (n - 1);
      sigma[a * F + b] = v;
      sigma[b * F + a] = v;
    }
  }
  return { mu, sigma, n };
}

/** Reads a statistics file: split 'train' or 'test' → mu_<split>, sigma_<split>, n_<split>. */
export function readFeatureStats(path: string, split: 'train' | 'test'): SplitStats {
  const z = readNpz(path);
  const mu = z[`mu_${split}`], sigma = z[`sigma_${split}`], n = z[`n_${split}`];
  if (!mu || !sigma || !n || mu.dtype !== 'float64' || sigma.dtype !== 'float64') {
    throw new Error(`dd2: ${path}: expected float64 arrays mu_${split}, sigma_${split} and n_${split}`);
  }
  const F = mu.data.length;
  if (sigma.data.length !== F * F) throw new Error(`dd2: ${path}: sigma_${split} has ${sigma.data.length} values, mu_${split} has ${F}`);
  return { mu: mu.data as Float64Array, sigma: sigma.data as Float64Array, n: Number(n.data[0]) };
}

/** The shipped reference statistics of a dataset's train (60,000) or test (10,000) split. */
export function shippedStats(dataset: 'mnist' | 'fashion-mnist', split: 'train' | 'test'): SplitStats {
  if (!(SHIPPED as readonly string[]).includes(dataset)) throw new RangeError(`dd2: shippedStats: dataset must be 'mnist' or 'fashion-mnist', got '${dataset}'`);
  if (split !== 'train' && split !== 'test') throw new RangeError(`dd2: shippedStats: split must be 'train' or 'test', got '${split}'`);
  return readFeatureStats(shippedPath(dataset, 'stats'), split);
}

// ------------------------------------------------------------------------------------------------
// Batched feature extraction and the dPPL distance.

export interface ImagesInput {
  /** 'NHWC-u8': uint8 (N, 28, 28, 1), pixel v ↦ v / 127.5 − 1 (as lib/data imageBatch);
   *  'NCHW-f32': float32 (N, 1, 28, 28) already in [-1, 1] */
  data: Uint8Array | Float32Array;
  n: number;
  layout: 'NHWC-u8' | 'NCHW-f32';
}

/**
 * Features (N x F float32, row-major) and softmax class probabilities (N x 10) of N images, in batches of
 * `batch` under noGrad/tidy. With one channel NHWC and NCHW hold the same bytes order, so both layouts give
 * identical features for identical pixels.
 */
export function extractFeatures(net: FeatureNet, images: ImagesInput, batch = 500, device?: Device): { features: Float32Array; probs: Float32Array } {
  const S = FEATURE_NET_SIZE, img = S * S, { n, layout, data } = images;
  if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`dd2: extractFeatures: n must be an integer >= 0, got ${n}`);
  if (!(Number.isInteger(batch) && batch > 0)) throw new RangeError(`dd2: extractFeatures: batch must be a positive integer, got ${batch}`);
  if (layout === 'NHWC-u8' ? !(data instanceof Uint8Array) : layout === 'NCHW-f32' ? !(data instanceof Float32Array) : true) {
    throw new TypeError(`dd2: extractFeatures: layout '${layout}' needs ${layout === 'NCHW-f32' ? 'a Float32Array' : 'a Uint8Array'} ` +
      `(layouts: 'NHWC-u8', 'NCHW-f32'), got ${data?.constructor?.name}`);
  }
  if (data.length !== n * img) {
    throw new RangeError(`dd2: extractFeatures: ${n} images of 1x${S}x${S} need ${n * img} values, got ${data.length} ` +
      `(the feature network takes single-channel ${S}x${S} images; resize and convert others first)`);
  }
  const features = new Float32Array(n * FEATURE_DIM), probs = new Float32Array(n * FEATURE_NET_CLASSES);
  const buf = new Float32Array(Math.min(batch, n) * img);
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const x = buf.subarray(0, b * img);
    if (layout === 'NHWC-u8') for (let i = 0; i < b * img; i++) x[i] = data[s * img + i] / 127.5 - 1;
    else x.set(data.subarray(s * img, (s + b) * img));
    noGrad(() => tidy(() => {
      const out = net.forward(tensor(x, [b, 1, S, S], { device }));
      features.set(out.features.toFloat32Array(), s * FEATURE_DIM);
      probs.set(softmax(out.logits, -1).toFloat32Array(), s * FEATURE_NET_CLASSES);
    }));
  }
  return { features, probs };
}

/** eps of the channel normalisation, as in LPIPS. */
export const PERCEPTUAL_EPS = 1e-10;

/**
 * LPIPS-style distance with uniform weights over the four conv activations: for each layer, every pixel's
 * channel vector is divided by (its L2 norm + 1e-10), the squared differences are summed over channels
 * (LPIPS's linear head with all weights 1), averaged over H x W, and the layers are summed. a, b (B, 1, 28, 28)
 * in [-1, 1] → (B). Meant for evaluation under noGrad/tidy: its gradient is not finite where a pixel's
 * channel vector is all zero (d sqrt at 0), which relu makes common.
 */
export function perceptualDistance(net: FeatureNet, a: Tensor, b: Tensor): Tensor {
  if (a.rank !== 4 || b.rank !== 4 || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`dd2: perceptualDistance: a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)} must have the same (B, 1, 28, 28) shape`);
  }
  const fa = net.forward(a).acts, fb = net.forward(b).acts;
  const unit = (t: Tensor): Tensor => div(t, addScalar(sqrt(sum(square(t), 1, true)), PERCEPTUAL_EPS));
  let d: Tensor | null = null;
  for (let l = 0; l < fa.length; l++) {
    const layer = mean(sum(square(sub(unit(fa[l]), unit(fb[l]))), 1), [1, 2]);   // (B)
    d = d ? add(d, layer) : layer;
  }
  return d!;
}
