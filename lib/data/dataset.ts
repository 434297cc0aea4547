// Image datasets for training: loading ('mnist', 'fashion-mnist' or a folder of PNGs), seeded
// batching, and conversion of a batch to tensors. Letters: N images, B batch, H height, W width,
// C channels. Images are stored as uint8 NHWC on the host; batches become float32 (B, C, H, W) in
// [-1, 1] (v / 127.5 - 1) on the requested device.
import { existsSync } from 'node:fs';
import { tensor } from '../tensor/create.js';
import type { Device } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { loadImageFolder } from './image-folder.js';
import { loadMnist } from './mnist.js';
import { convertChannels, resizeImages } from './resize.js';

export interface ImageDataset {
  /** 'mnist', 'fashion-mnist', or the absolute path of a PNG folder (each can be passed back to loadDataset) */
  name: string;
  split: 'train' | 'test';
  n: number;
  height: number;
  width: number;
  channels: number;
  /** 0 for an unlabelled folder */
  numClasses: number;
  /** n*H*W*C, NHWC */
  images: Uint8Array;
  labels: Int32Array | null;
  /** class names by label (empty when unlabelled) */
  classNames?: string[];
}

export interface LoadOptions {
  /** resize to size x size (area average when shrinking, bilinear when enlarging; see resize.ts) */
  size?: number;
  /** keep the first `limit` images (MNIST, Fashion-MNIST) or `limit` evenly spaced files (folders) */
  limit?: number;
  /** 1 or 3 channels; default: the dataset's own (a folder's majority) */
  channels?: 1 | 3;
}

function checkPositiveInt(v: number | undefined, what: string): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0)) {
    throw new RangeError(`dd2: loadDataset: ${what} must be a positive integer, got ${v}`);
  }
}

/** Loads one split of a dataset: 'mnist', 'fashion-mnist', or a folder of PNG images (image-folder.ts). */
export async function loadDataset(spec: string, split: 'train' | 'test', opts: LoadOptions = {}): Promise<ImageDataset> {
  if (split !== 'train' && split !== 'test') throw new RangeError(`dd2: loadDataset: split must be 'train' or 'test', got '${split}'`);
  checkPositiveInt(opts.size, 'size');
  checkPositiveInt(opts.limit, 'limit');
  if (opts.channels !== undefined && opts.channels !== 1 && opts.channels !== 3) {
    throw new RangeError(`dd2: loadDataset: channels must be 1 or 3, got ${opts.channels}`);
  }
  const key = spec.toLowerCase();
  if (key !== 'mnist' && key !== 'fashion-mnist') {
    if (!existsSync(spec)) {
      throw new Error(`dd2: unknown dataset '${spec}': expected 'mnist', 'fashion-mnist' or a folder of PNG images`);
    }
    return loadImageFolder(spec, split, opts);
  }
  let ds = key === 'mnist' ? await loadMnist(split) : await loadFashionMnist(split);
  if (opts.limit !== undefined && opts.limit < ds.n) ds = take(ds, opts.limit);
  if (opts.channels !== undefined && opts.channels !== ds.channels) {
    ds = { ...ds, channels: opts.channels, images: convertChannels(ds.images, ds.n * ds.height * ds.width, ds.channels, opts.channels) };
  }
  if (opts.size !== undefined && (opts.size !== ds.height || opts.size !== ds.width)) {
    const images = resizeImages(ds.images, ds.n, ds.height, ds.width, ds.channels, opts.size, opts.size);
    ds = { ...ds, height: opts.size, width: opts.size, images };
  }
  return ds;
}

/** The first k images of a dataset (copied). */
function take(ds: ImageDataset, k: number): ImageDataset {
  const len = ds.height * ds.width * ds.channels;
  return { ...ds, n: k, images: ds.images.slice(0, k * len), labels: ds.labels ? ds.labels.slice(0, k) : null };
}

// ------------------------------------------------------------------------------------------------
// Batcher: epoch e visits a permutation of 0..n-1 drawn from (seed, e) alone, so a batcher is
// restored from { epoch, pos, seed } exactly. Batches never span epochs: the last one of an epoch is
// short unless dropLast drops it.

export interface BatcherOptions { seed: number; shuffle?: boolean; dropLast?: boolean }
export interface BatcherState { epoch: number; pos: number; seed: number }

/** sfc32 (Chris Doty-Humphrey's small fast counter generator), 32-bit state words. */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
}

/** A permutation of 0..n-1 determined by (seed, epoch): Fisher-Yates over sfc32. */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const next = sfc32(seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0, epoch >>> 0, 0x9e3779b9 ^ Math.floor(epoch / 2 ** 32));
  for (let i = 0; i < 16; i++) next();                  // mix the seed words before use
  for (let i = n - 1; i > 0; i--) {
    const u = (next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53;   // 53-bit uniform in [0, 1)
    const j = Math.floor(u * (i + 1));
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

export class Batcher {
  readonly n: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  private _epoch = 0;
  private pos = 0;
  private perm: Int32Array | null = null;
  private permEpoch = -1;

  constructor(n: number, batchSize: number, opts: BatcherOptions) {
    if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`dd2: Batcher: n must be a positive integer, got ${n}`);
    if (!(Number.isInteger(batchSize) && batchSize > 0)) {
      throw new RangeError(`dd2: Batcher: batchSize must be a positive integer, got ${batchSize}`);
    }
    if (!(Number.isSafeInteger(opts.seed) && opts.seed >= 0)) {
      throw new RangeError(`dd2: Batcher: seed must be a non-negative safe integer, got ${opts.seed}`);
    }
    this.dropLast = opts.dropLast ?? false;
    if (this.dropLast && batchSize > n) {
      throw new RangeError(`dd2: Batcher: batchSize ${batchSize} > n ${n} with dropLast would never yield a batch`);
    }
    this.n = n;
    this.batchSize = batchSize;
    this.seed = opts.seed;
    this.shuffle = opts.shuffle ?? true;
  }

  /** Completed passes over the data (the epoch the next batch belongs to). */
  get epoch(): number { return this._epoch; }

  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.n / this.batchSize) : Math.ceil(this.n / this.batchSize);
  }

  /** Indices of the next batch; reshuffles at each epoch start. */
  next(): Int32Array {
    if (this.permEpoch !== this._epoch) {
      this.perm = this.shuffle ? epochPermutation(this.n, this.seed, this._epoch) : null;
      this.permEpoch = this._epoch;
    }
    const end = Math.min(this.pos + this.batchSize, this.n);
    const out = new Int32Array(end - this.pos);
    for (let i = 0; i < out.length; i++) out[i] = this.perm ? this.perm[this.pos + i] : this.pos + i;
    this.pos = end;
    const remaining = this.n - this.pos;
    if (remaining === 0 || (this.dropLast && remaining < this.batchSize)) {
      this._epoch++;
      this.pos = 0;
    }
    return out;
  }

  state(): BatcherState {
    return { epoch: this._epoch, pos: this.pos, seed: this.seed };
  }

  /** A batcher that continues exactly where the one that produced `s` stopped. opts.seed, if given,
   *  must equal s.seed. */
  static fromState(n: number, batchSize: number, s: BatcherState,
                   opts: Partial<BatcherOptions> = {}): Batcher {
    if (opts.seed !== undefined && opts.seed !== s.seed) {
      throw new RangeError(`dd2: Batcher.fromState: the state's seed ${s.seed} differs from opts.seed ${opts.seed}`);
    }
    const b = new Batcher(n, batchSize, { ...opts, seed: s.seed });
    if (!(Number.isSafeInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.pos) && s.pos >= 0 && s.pos < n)) {
      throw new RangeError(`dd2: Batcher.fromState: invalid state ${JSON.stringify(s)} for n = ${n}`);
    }
    if (b.dropLast && n - s.pos < batchSize) {
      throw new RangeError(`dd2: Batcher.fromState: pos ${s.pos} leaves less than a batch of ${batchSize} ` +
        `(n = ${n}, dropLast); was the state saved with another batch size?`);
    }
    b._epoch = s.epoch;
    b.pos = s.pos;
    return b;
  }
}

// ------------------------------------------------------------------------------------------------
// Batches as tensors.

const TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 127.5 - 1);

function checkIndices(ds: ImageDataset, idx: Int32Array, what: string): void {
  for (let i = 0; i < idx.length; i++) {
    if (!(idx[i] >= 0 && idx[i] < ds.n)) {
      throw new RangeError(`dd2: ${what}: index ${idx[i]} at position ${i} is outside dataset '${ds.name}' (n = ${ds.n})`);
    }
  }
}

/** Images idx of ds as float32 (B, C, H, W) in [-1, 1]: v / 127.5 - 1. */
export function imageBatch(ds: ImageDataset, idx: Int32Array, opts: { device?: Device } = {}): Tensor {
  checkIndices(ds, idx, 'imageBatch');
  const { height: H, width: W, channels: C } = ds;
  const HW = H * W, img = HW * C;
  const out = new Float32Array(idx.length * img);
  for (let b = 0; b < idx.length; b++) {
    const src = idx[b] * img, dst = b * img;
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < HW; p++) out[dst + c * HW + p] = TO_UNIT[ds.images[src + p * C + c]];
    }
  }
  return tensor(out, [idx.length, C, H, W], { device: opts.device });
}

/** Labels idx of ds as int32 (B). */
export function labelBatch(ds: ImageDataset, idx: Int32Array, opts: { device?: Device } = {}): Tensor {
  if (!ds.labels) throw new Error(`dd2: labelBatch: dataset '${ds.name}' (${ds.split}) has no labels`);
  checkIndices(ds, idx, 'labelBatch');
  const labels = ds.labels;
  return tensor(Int32Array.from(idx, (i) => labels[i]), [idx.length], { dtype: 'int32', device: opts.device });
}

/** The inverse of imageBatch's mapping for model outputs: float32 (B, C, H, W), nominally in [-1, 1],
 *  -> uint8 NHWC, round((x + 1) * 127.5) clamped to 0..255 (NaN -> 0). */
export function toUint8Images(x: Tensor): Uint8Array {
  if (x.rank !== 4 || x.dtype !== 'float32') {
    throw new TypeError(`dd2: toUint8Images: expected float32 (B, C, H, W), got ${x.describe()}`);
  }
  const [B, C, H, W] = x.shape, HW = H * W;
  const v = x.toFloat32Array();
  const out = new Uint8Array(v.length);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < HW; p++) {
        const q = Math.round((v[(b * C + c) * HW + p] + 1) * 127.5);
        out[(b * HW + p) * C + c] = q > 255 ? 255 : q >= 0 ? q : 0;
      }
    }
  }
  return out;
}
