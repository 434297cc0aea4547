// The token cache: a dataset split encoded once by a VQ tokenizer into code indices, so the AR teacher trains
// on integers (LlamaGen's extract_codes). File: safetensors with 'tokens' I32 (N, h·w) in raster order and
// 'labels' I32 (N), metadata '__dd2__' = {kind: 'tokens', tokenizer, dataset, split, grid: [h, w],
// codebookSize, numClasses}. An unlabelled folder gets label 0 for every image and numClasses 1.
// Letters: N images, B batch, h/w token grid.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { noGrad, tidy } from '../tensor/engine.js';
import { imageBatch, loadDataset, type ImageDataset } from '../data/dataset.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors.js';
import { META_KEY } from '../io/checkpoint.js';
import type { Progress } from '../io/progress.js';
import { loadVQ, type VQModel } from '../models/vq.js';

export interface TokenCacheMeta {
  kind: 'tokens';
  /** absolute path of the tokenizer checkpoint */
  tokenizer: string;
  dataset: string;
  split: 'train' | 'test';
  grid: [number, number];
  codebookSize: number;
  numClasses: number;
}

export interface TokenCache { meta: TokenCacheMeta; n: number; tokens: Int32Array; labels: Int32Array }

/** Codes of every image of ds: (N, h·w) row-major, in batches of `batchSize` (model in eval mode). */
export function encodeDataset(vq: VQModel, ds: ImageDataset, batchSize = 500, progress?: Progress): Int32Array {
  const { imageSize: S, imageChannels: C } = vq.cfg;
  if (ds.height !== S || ds.width !== S || ds.channels !== C) {
    throw new RangeError(`dd2: encodeDataset: images of '${ds.name}' are ${ds.height}x${ds.width}x${ds.channels}, ` +
      `the tokenizer takes ${S}x${S}x${C}`);
  }
  const [h, w] = vq.gridSize, L = h * w;
  const out = new Int32Array(ds.n * L);
  for (let s = 0; s < ds.n; s += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, ds.n - s) }, (_, i) => s + i);
    const codes = noGrad(() => tidy(() => vq.encode(imageBatch(ds, idx)).idx.toInt32Array()));
    out.set(codes, s * L);
    progress?.tick(idx.length);
  }
  return out;
}

/** Writes a token cache (atomic). */
export function writeTokenCache(path: string, tokens: Int32Array, labels: Int32Array, meta: TokenCacheMeta): void {
  const L = meta.grid[0] * meta.grid[1], n = labels.length;
  if (tokens.length !== n * L) {
    throw new RangeError(`dd2: writeTokenCache: ${tokens.length} tokens for ${n} images of ${L} tokens each`);
  }
  const arrays = new Map<string, NamedArray>([
    ['tokens', { dtype: 'I32', shape: [n, L], data: tokens }],
    ['labels', { dtype: 'I32', shape: [n], data: labels }],
  ]);
  writeSafetensors(path, arrays, { [META_KEY]: JSON.stringify(meta) });
}

/** Reads a token cache written by writeTokenCache, checking its shapes and token range. */
export function readTokenCacheFile(path: string): TokenCache {
  const { arrays, metadata } = readSafetensors(path);
  const t = arrays.get('tokens'), l = arrays.get('labels');
  let meta: TokenCacheMeta | null = null;
  try { meta = JSON.parse(metadata[META_KEY] ?? 'null'); } catch { /* reported below */ }
  if (!t || !l || t.dtype !== 'I32' || l.dtype !== 'I32' || t.shape.length !== 2 || meta?.kind !== 'tokens' ||
      l.shape[0] !== t.shape[0] || meta.grid[0] * meta.grid[1] !== t.shape[1]) {
    throw new Error(`dd2: ${path} is not a token cache (need I32 'tokens' (N, h*w), I32 'labels' (N) and '${META_KEY}' ` +
      `metadata of kind 'tokens' whose grid matches)`);
  }
  const tokens = t.data as Int32Array;
  for (const v of tokens) {
    if (!(v >= 0 && v < meta.codebookSize)) throw new Error(`dd2: ${path}: token ${v} outside [0, ${meta.codebookSize})`);
  }
  return { meta, n: t.shape[0], tokens, labels: l.data as Int32Array };
}

export interface EncodeOptions {
  tokenizer: string; dataset: string; split: 'train' | 'test'; out: string;
  batchSize?: number; limit?: number; progress?: (total: number) => Progress;
}

export interface EncodeResult { out: string; images: number; grid: [number, number]; codebookSize: number; codesUsed: number; seconds: number }

/** Loads the tokenizer and the dataset split (resized to the tokenizer's size), encodes it, writes the cache. */
export async function encodeToCache(o: EncodeOptions): Promise<EncodeResult> {
  const t0 = performance.now();
  const vq = tidy(() => loadVQ(o.tokenizer));
  try {
    const ds = await loadDataset(o.dataset, o.split, { size: vq.cfg.imageSize, channels: vq.cfg.imageChannels as 1 | 3, limit: o.limit });
    const progress = o.progress?.(ds.n);
    const tokens = encodeDataset(vq, ds, o.batchSize ?? 500, progress);
    progress?.done();
    const labels = ds.labels ?? new Int32Array(ds.n);
    const meta: TokenCacheMeta = {
      kind: 'tokens', tokenizer: resolve(o.tokenizer), dataset: ds.name, split: o.split, grid: vq.gridSize,
      codebookSize: vq.codebookSize, numClasses: ds.labels ? ds.numClasses : 1,
    };
    mkdirSync(dirname(resolve(o.out)), { recursive: true });
    writeTokenCache(o.out, tokens, labels, meta);
    const seen = new Uint8Array(vq.codebookSize);
    for (const v of tokens) seen[v] = 1;
    return { out: resolve(o.out), images: ds.n, grid: vq.gridSize, codebookSize: vq.codebookSize,
      codesUsed: seen.reduce((s, v) => s + v, 0), seconds: (performance.now() - t0) / 1000 };
  } finally {
    vq.dispose();
  }
}
