// Sample-quality metrics of a set of images in one feature space (DATA-EVAL.md §3.5, §4.1):
//   FID        Fréchet distance between the samples' feature Gaussian and the reference statistics;
//   IS         exp(E_x KL(p(y|x) ‖ p(y))), mean (and std) over 10 splits (ADM's formula, our classifier);
//   precision  fraction of samples inside the union of the reference k-NN balls (k = 3, Kynkäänniemi et al.);
//   recall     fraction of reference images inside the union of the sample k-NN balls;
//   class acc  fraction of class-conditional samples that the classifier assigns to the requested class.
// The feature space is the domain feature network of MNIST / Fashion-MNIST (dFID, dIS, ...) or a
// user-supplied InceptionV3. Every number carries n, the network (name@sha256 prefix) and the reference.
// Letters: n images, H/W/C image height/width/channels, F feature dimension, K classes of the softmax.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { noGrad, tidy } from '../tensor/engine.js';
import { softmax } from '../tensor/ops/softmax.js';
import { loadDataset } from '../data/dataset.js';
import { convertChannels, resizeImages } from '../data/resize.js';
import { zipEntries } from '../io/npz.js';
import { FEATURE_DIM, FEATURE_NET_CLASSES, FEATURE_NET_SIZE, extractFeatures, loadFeatureNet, readFeatureStats,
  type FeatureNet, type FeatureNetMeta } from '../metrics/feature-net.js';
import { featureStats, frechetDistance, type FeatureStats } from '../metrics/fid.js';
import { imagesFromUint8, INCEPTION_CLASSES, INCEPTION_FEATURES, loadInception, type InceptionV3 } from '../metrics/inception.js';
import { inceptionScore } from '../metrics/inception-score.js';
import { improvedPrecisionRecall } from '../metrics/precision-recall.js';
import { readAdmReference, readFidStats } from '../metrics/stats-io.js';

/** Images in host memory: uint8 NHWC, with the requested class of each when known. */
export interface ImageSet {
  n: number;
  height: number;
  width: number;
  channels: number;
  images: Uint8Array;
  labels: Int32Array | null;
}

/** mean (F) and covariance (F x F) of features, float64; n when known */
export type GaussianStats = FeatureStats;

/** A network mapping images to features (and class probabilities). */
export interface FeatureExtractor {
  /** e.g. 'domain:mnist' or 'inception-v3' */
  readonly name: string;
  /** sha256 (hex) of its weights */
  readonly sha256: string;
  /** F */
  readonly dim: number;
  /** the image side and channels it takes (null: any; it resizes itself) */
  readonly inputSize: number | null;
  readonly inputChannels: number | null;
  /** K of its softmax */
  readonly numProbs: number;
  /** whether its classes are the dataset's labels (class accuracy needs that) */
  readonly classifiesDataset: string | null;
  /** features (n×F) and softmax probabilities (n×K; null without a classifier) of uint8 NHWC images at its input size */
  extract(images: ImageSet, batch: number): { features: Float32Array; probs: Float32Array | null };
  /** reference statistics it ships for a dataset's split, if any */
  referenceStats(dataset: string, split: 'train' | 'test'): GaussianStats | null;
  dispose(): void;
}

/** "name@<12 hex of sha256>" */
export const netId = (ex: FeatureExtractor): string => `${ex.name}@${ex.sha256.slice(0, 12)}`;

/** The domain feature network: 'mnist', 'fashion-mnist' (shipped) or a .safetensors from `dd2 train featnet`. */
export class DomainExtractor implements FeatureExtractor {
  readonly name: string;
  readonly sha256: string;
  readonly dim = FEATURE_DIM;
  readonly inputSize = FEATURE_NET_SIZE;
  readonly inputChannels = 1;
  readonly numProbs = FEATURE_NET_CLASSES;
  readonly classifiesDataset: string;
  readonly net: FeatureNet;
  readonly meta: FeatureNetMeta;

  constructor(which: string) {
    const { net, meta } = loadFeatureNet(which);
    this.net = net;
    this.meta = meta;
    this.name = which === 'mnist' || which === 'fashion-mnist' ? `domain:${meta.dataset}` : `domain:${basename(which)}`;
    this.sha256 = meta.sha256;
    this.classifiesDataset = meta.dataset;
  }

  extract(images: ImageSet, batch: number): { features: Float32Array; probs: Float32Array } {
    checkInput(this, images);
    return extractFeatures(this.net, { data: images.images, n: images.n, layout: 'NHWC-u8' }, batch);
  }

  referenceStats(dataset: string, split: 'train' | 'test'): GaussianStats | null {
    if (dataset !== this.meta.dataset || !existsSync(this.meta.statsPath)) return null;
    return readFeatureStats(this.meta.statsPath, split);
  }

  dispose(): void {
    this.net.dispose();
  }
}

/**
 * The FID InceptionV3 (pool3, 2048-d; softmax of the unbiased 1008 logits for IS) from user-given weights
 * (lib/metrics/inception.ts; pytorch-fid's resize and normalisation). Any image size; gray is replicated to RGB.
 */
export class InceptionExtractor implements FeatureExtractor {
  readonly name = 'inception-v3';
  readonly sha256: string;
  readonly dim = INCEPTION_FEATURES;
  readonly inputSize = null;
  readonly inputChannels = null;
  readonly numProbs = INCEPTION_CLASSES;
  readonly classifiesDataset = null;
  readonly net: InceptionV3;

  constructor(readonly path: string) {
    if (!existsSync(path)) throw new Error(`dd2: --inception: ${path} does not exist`);
    this.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
    this.net = loadInception(path);
  }

  extract(images: ImageSet, batch: number): { features: Float32Array; probs: Float32Array | null } {
    const { n, height: H, width: W, channels: C } = images, len = H * W * C;
    const features = new Float32Array(n * this.dim);
    const probs = this.net.hasLogits ? new Float32Array(n * this.numProbs) : null;
    for (let s = 0; s < n; s += batch) {
      const b = Math.min(batch, n - s);
      noGrad(() => tidy(() => {
        const x = imagesFromUint8(images.images.subarray(s * len, (s + b) * len), [b, H, W, C], { device: this.net.device });
        const out = this.net.forward(x);
        features.set(out.pool.toFloat32Array(), s * this.dim);
        if (probs && out.logits) probs.set(softmax(out.logits, -1).toFloat32Array(), s * this.numProbs);
      }));
    }
    return { features, probs };
  }

  referenceStats(): GaussianStats | null {
    return null;
  }

  dispose(): void {
    this.net.dispose();
  }
}

function checkInput(ex: FeatureExtractor, s: ImageSet): void {
  if ((ex.inputSize !== null && (s.height !== ex.inputSize || s.width !== ex.inputSize)) ||
      (ex.inputChannels !== null && s.channels !== ex.inputChannels)) {
    throw new Error(`dd2: ${ex.name} takes ${ex.inputSize}x${ex.inputSize}x${ex.inputChannels} images, got ` +
      `${s.height}x${s.width}x${s.channels}`);
  }
}

/**
 * Images as the extractor takes them. A different size or channel count is an error naming both, unless
 * `resize` is set: then channels are converted (gray <-> RGB, ITU-R 601 luma) and the images resampled
 * (area average when shrinking, bilinear when enlarging; lib/data/resize.ts).
 */
export function fitImages(s: ImageSet, ex: FeatureExtractor, resize: boolean, what: string): ImageSet {
  const S = ex.inputSize, C = ex.inputChannels;
  const sizeOk = S === null || (s.height === S && s.width === S), chOk = C === null || s.channels === C;
  if (sizeOk && chOk) return s;
  if (!resize) {
    throw new Error(`dd2: ${what}: images are ${s.height}x${s.width}x${s.channels} but ${ex.name} takes ` +
      `${S}x${S}x${C}; pass --resize to resample them (area / bilinear, luma for RGB -> gray)`);
  }
  let images = s.images, channels = s.channels;
  if (!chOk) { images = convertChannels(images, s.n * s.height * s.width, channels, C!); channels = C!; }
  let height = s.height, width = s.width;
  if (!sizeOk) { images = resizeImages(images, s.n, height, width, channels, S!, S!); height = width = S!; }
  return { ...s, images, channels, height, width };
}

/** The reference of FID and precision/recall. */
export interface Reference {
  /** how it was obtained, e.g. "mnist:test (shipped stats, n=10000)" */
  name: string;
  stats: GaussianStats;
  /** features of reference images for precision/recall (nPR × F), or null when there are none */
  prFeatures: Float32Array | null;
  prN: number;
}

export interface ReferenceOptions {
  /** reference images used for precision/recall (the first prN of the split / file) */
  prN: number;
  batch: number;
  resize: boolean;
}

/** Parses 'dataset:split' (dataset 'mnist', 'fashion-mnist' or a folder; split 'train' or 'test'); null if not that form. */
export function parseDatasetSpec(spec: string): { dataset: string; split: 'train' | 'test' } | null {
  const m = /^(.+):(train|test)$/.exec(spec);
  return m ? { dataset: m[1], split: m[2] as 'train' | 'test' } : null;
}

function sliceSet(s: ImageSet, k: number): ImageSet {
  const len = s.height * s.width * s.channels;
  return { ...s, n: k, images: s.images.subarray(0, k * len), labels: s.labels ? s.labels.subarray(0, k) : null };
}

async function datasetImages(spec: { dataset: string; split: 'train' | 'test' }): Promise<ImageSet> {
  const ds = await loadDataset(spec.dataset, spec.split);
  return { n: ds.n, height: ds.height, width: ds.width, channels: ds.channels, images: ds.images, labels: ds.labels };
}

function checkDim(st: GaussianStats, ex: FeatureExtractor, where: string): GaussianStats {
  if (st.mu.length !== ex.dim || st.sigma.length !== ex.dim * ex.dim) {
    throw new Error(`dd2: --ref ${where}: statistics of dimension ${st.mu.length} do not match ${ex.name}'s ${ex.dim} features`);
  }
  return st;
}

/**
 * The reference for `spec`: 'dataset:split' (the network's shipped statistics of that split when it has them,
 * else statistics computed here from the whole split), or an .npz: pytorch-fid statistics (mu, sigma), the
 * shipped feature-network statistics (mu_test, sigma_test, ...: the test split is used), or an ADM reference
 * batch (arr_0 images, with or without mu/sigma). Precision/recall use the first prN reference images (none for a
 * statistics-only file).
 */
export async function resolveReference(spec: string, ex: FeatureExtractor, o: ReferenceOptions): Promise<Reference> {
  const ds = parseDatasetSpec(spec);
  if (ds && !spec.endsWith('.npz')) {
    const all = fitImages(await datasetImages(ds), ex, o.resize, `--ref ${spec}`);
    const shipped = ex.referenceStats(ds.dataset, ds.split);
    const prN = Math.min(o.prN, all.n);
    if (shipped) {
      const pr = ex.extract(sliceSet(all, prN), o.batch).features;
      return { name: `${spec} (statistics shipped with the network, n=${shipped.n})`, stats: checkDim(shipped, ex, spec), prFeatures: pr, prN };
    }
    const f = ex.extract(all, o.batch).features;
    return { name: `${spec} (statistics computed here, n=${all.n})`, stats: featureStats(f, all.n, ex.dim),
      prFeatures: f.subarray(0, prN * ex.dim), prN };
  }
  if (!existsSync(spec)) throw new Error(`dd2: --ref: ${spec} is neither 'dataset:split' (e.g. mnist:test) nor an existing .npz file`);
  const keys = new Set(zipEntries(readFileSync(spec), spec).map((e) => e.name.replace(/\.npy$/, '')));
  const z = { mu: keys.has('mu'), sigma: keys.has('sigma'), mu_test: keys.has('mu_test'), sigma_test: keys.has('sigma_test'), arr_0: keys.has('arr_0') };
  let stats: GaussianStats | null = null;
  if (z.mu && z.sigma && !z.arr_0) stats = checkDim(readFidStats(spec), ex, spec);
  else if (z.mu_test && z.sigma_test) stats = checkDim(readFeatureStats(spec, 'test'), ex, spec);
  let refImages: ImageSet | null = null;
  if (z.arr_0) {
    const adm = readAdmReference(spec);
    const a = adm.images;
    if (adm.stats && !stats) stats = checkDim(adm.stats, ex, spec);
    refImages = fitImages({ n: a.n, height: a.h, width: a.w, channels: a.c, images: a.data, labels: null }, ex, o.resize, `--ref ${spec}`);
  }
  if (!stats && !refImages) {
    throw new Error(`dd2: --ref ${spec} holds [${[...keys].join(', ')}]; expected 'mu' and 'sigma' (pytorch-fid), ` +
      "'mu_test' and 'sigma_test' (dd2 train featnet), or reference images 'arr_0' (ADM)");
  }
  let prFeatures: Float32Array | null = null, prN = 0;
  if (refImages) {
    prN = Math.min(o.prN, refImages.n);
    if (!stats) {
      const f = ex.extract(refImages, o.batch).features;
      stats = featureStats(f, refImages.n, ex.dim);
      prFeatures = f.subarray(0, prN * ex.dim);
    } else {
      prFeatures = ex.extract(sliceSet(refImages, prN), o.batch).features;
    }
  }
  const how = z.mu || z.mu_test ? 'statistics from the file' : 'statistics computed here from arr_0';
  return { name: `${spec} (${how}, n=${stats!.n ?? 'not recorded'})`, stats: stats!, prFeatures, prN };
}

interface Provenance {
  /** samples the number was computed from */
  n: number;
  /** name@sha256-prefix of the feature network */
  net: string;
}

export interface EvalMetrics {
  n: number;
  net: string;
  ref: string;
  fid: Provenance & { value: number; ref: string; nRef: number | null };
  /** null when the network has no classifier */
  is: (Provenance & { value: number; std: number; splits: number }) | null;
  precision: (Provenance & { value: number; ref: string; nRef: number; k: number }) | null;
  recall: (Provenance & { value: number; ref: string; nRef: number; k: number }) | null;
  /** null when the samples have no labels or the network does not classify the dataset's classes */
  classAccuracy: (Provenance & { value: number }) | null;
}

export interface MetricOptions {
  batch: number;
  /** IS splits (default 10; fewer when n < 10) */
  splits?: number;
  /** k of precision/recall (default 3) */
  k?: number;
  /** the dataset the samples' labels refer to (class accuracy is computed only when the network classifies it) */
  dataset?: string | null;
}

/** FID, IS, precision/recall and class accuracy of `samples` (already fitted to the extractor's input). */
export function computeMetrics(samples: ImageSet, ex: FeatureExtractor, ref: Reference, o: MetricOptions): EvalMetrics {
  const { n } = samples;
  if (n < 2) throw new RangeError(`dd2: eval: FID needs at least 2 samples, got ${n}`);
  const net = netId(ex), k = o.k ?? 3;
  const { features, probs } = ex.extract(samples, o.batch);
  const fid = frechetDistance(featureStats(features, n, ex.dim), ref.stats);
  const splits = Math.min(o.splits ?? 10, n);
  const is = probs ? inceptionScore(probs, n, ex.numProbs, splits) : null;
  let pr: { precision: number; recall: number } | null = null;
  if (ref.prFeatures && ref.prN > k && n > k) {
    pr = improvedPrecisionRecall({ data: ref.prFeatures, n: ref.prN, d: ex.dim }, { data: features, n, d: ex.dim }, k);
  }
  let classAccuracy: EvalMetrics['classAccuracy'] = null;
  const dataset = o.dataset === undefined ? ex.classifiesDataset : o.dataset;
  if (probs && samples.labels && ex.classifiesDataset && dataset === ex.classifiesDataset) {
    let hit = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < ex.numProbs; c++) if (probs[i * ex.numProbs + c] > probs[i * ex.numProbs + best]) best = c;
      if (best === samples.labels[i]) hit++;
    }
    classAccuracy = { value: hit / n, n, net };
  }
  const prOut = (value: number) => ({ value, n, net, ref: ref.name, nRef: ref.prN, k });
  return {
    n, net, ref: ref.name,
    fid: { value: fid, n, net, ref: ref.name, nRef: ref.stats.n ?? null },
    is: is ? { value: is.mean, std: is.std, splits, n, net } : null,
    precision: pr ? prOut(pr.precision) : null,
    recall: pr ? prOut(pr.recall) : null,
    classAccuracy,
  };
}
