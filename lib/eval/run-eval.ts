// The evaluation run behind `dd2 eval`: reads samples files, opens samplers for checkpoints and draws images
// from them, measures every row in one feature space against one reference (metrics.ts), PPL for
// noise-driven samplers (ppl.ts) and speed (speed.ts), and returns the table rows (table.ts). Messages and
// progress go through the hooks; nothing is printed here.
// Letters: n images, K classes, S image side, C channels.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import { toUint8Images } from '../data/dataset.js';
import { perceptualDistance } from '../metrics/feature-net.js';
import type { ImageSampler } from './sampler.js';
import { datasetOfCheckpoint, openSamplers, readCheckpointMeta, type SamplerOptions } from './registry.js';
import { readSamplesNpz } from './npz-samples.js';
import { computeMetrics, DomainExtractor, fitImages, InceptionExtractor, resolveReference, type FeatureExtractor, type ImageSet,
  type Reference } from './metrics.js';
import { PPL_EPSILON, perceptualPathLength, toGraySize, type ImageDistance } from './ppl.js';
import { measureSpeed } from './speed.js';
import { tableJson, type EvalRow } from './table.js';

/** Datasets with a shipped domain feature network. */
export const DOMAIN_DATASETS = ['mnist', 'fashion-mnist'] as const;

export interface EvalConfig {
  /** samples .npz files (dd2 or ADM layout) */
  samples: string[];
  /** checkpoints to draw images from (lib/eval/registry.ts) */
  models: string[];
  tokenizer?: string;
  /** the dataset (picks the domain network and the default reference); see pickDataset */
  dataset: string;
  /** a domain network file from `dd2 train featnet` instead of the shipped one */
  featnet?: string;
  /** InceptionV3 weights: measure in its feature space instead of the domain network's */
  inception?: string;
  /** FID reference (default '<dataset>:test') */
  ref?: string;
  /** images per model (default 10000); for files, the first n of each */
  n?: number;
  /** labels cycled over the model images (default: uniform random) */
  classes?: number[];
  sampling: Pick<SamplerOptions, 'cfg' | 'temperature' | 'topK' | 'topP'>;
  /** PPL pairs (0 = off) */
  ppl: number;
  speed: boolean;
  repeats: number;
  warmup: number;
  /** images per generator call, feature batch and throughput batch */
  batch: number;
  /** resample images whose size/channels differ from the network's input */
  resize: boolean;
  seed: number;
}

export interface EvalHooks {
  info?: (message: string) => void;
  /** a progress counter for `total` images */
  progress?: (label: string, total: number) => { tick(n: number): void; done(): void };
}

export interface EvalResult {
  rows: EvalRow[];
  reference: Reference;
  /** name@sha256 of the feature network */
  net: string;
}

/** The dataset: the given one, else what a checkpoint's tokenizer (or a samples file's samples.json) records, else mnist. */
export function pickDataset(given: string | undefined, models: readonly string[], samples: readonly string[], tokenizer?: string):
  { dataset: string; from: string } {
  if (given) return { dataset: given, from: '--dataset' };
  for (const m of models) {
    if (!existsSync(m)) continue;
    const d = datasetOfCheckpoint(readCheckpointMeta(m), tokenizer);
    if (d) return { dataset: d, from: `the tokenizer of ${m}` };
  }
  for (const f of samples) {
    const manifest = join(dirname(f), 'samples.json');
    if (!existsSync(manifest)) continue;
    try {
      const tok = (JSON.parse(readFileSync(manifest, 'utf8')) as { tokenizer?: string }).tokenizer;
      if (tok && existsSync(tok)) {
        const d = datasetOfCheckpoint(readCheckpointMeta(tok));
        if (d) return { dataset: d, from: `the tokenizer recorded in ${manifest}` };
      }
    } catch { /* an unreadable manifest only loses the hint */ }
  }
  return { dataset: 'mnist', from: 'the default' };
}

/** 'run/samples.npz' for the usual file name (the folder tells runs apart), else the file name. */
export function sampleSetName(path: string): string {
  const b = basename(path);
  return b === 'samples.npz' ? `${basename(dirname(resolve(path)))}/${b}` : b;
}

/** n labels cycling through `classes`, or uniform over K classes from the seed. */
export function sampleLabels(n: number, numClasses: number, classes: readonly number[] | undefined, seed: number): Int32Array {
  if (classes?.length) return Int32Array.from({ length: n }, (_, i) => classes[i % classes.length]);
  const u = new Generator(seed).uniform([n], 'cpu');
  const v = u.toFloat32Array();
  u.dispose();
  return Int32Array.from(v, (x) => Math.min(numClasses - 1, Math.floor(x * numClasses)));
}

/** Draws images for `labels` in batches; batch b uses seed + b·1000003. */
export function drawImages(s: ImageSampler, labels: Int32Array, batch: number, seed: number, tick?: (n: number) => void): ImageSet {
  const n = labels.length, len = s.size * s.size * s.channels;
  const images = new Uint8Array(n * len);
  for (let b = 0, start = 0; start < n; b++, start += batch) {
    const lab = labels.subarray(start, Math.min(n, start + batch));
    images.set(noGrad(() => tidy(() => toUint8Images(s.decode(s.generate(lab, seed + b * 1000003))))), start * len);
    tick?.(lab.length);
  }
  return { n, height: s.size, width: s.size, channels: s.channels, images, labels };
}

/** Runs the evaluation; see the top of this file. */
export async function runEval(c: EvalConfig, hooks: EvalHooks = {}): Promise<EvalResult> {
  const say = hooks.info ?? (() => {});
  const refSpec = c.ref ?? `${c.dataset}:test`;
  // inputs first, so that a bad file fails before any long computation
  const sets = c.samples.map((f) => {
    const s = readSamplesNpz(f);
    const n = Math.min(c.n ?? s.n, s.n), len = s.height * s.width * s.channels;
    const set: ImageSet = { n, height: s.height, width: s.width, channels: s.channels, images: s.images.subarray(0, n * len),
      labels: s.labels ? s.labels.subarray(0, n) : null };
    return { path: f, set };
  });
  const samplers: { s: ImageSampler; source: string }[] = [];
  let ex: FeatureExtractor | null = null, pplNet: DomainExtractor | null = null;
  try {
    const o: SamplerOptions = { ...c.sampling, tokenizer: c.tokenizer, batch: c.batch };
    for (const m of c.models) for (const s of openSamplers(m, o).samplers) samplers.push({ s, source: m });
    for (const { s, source } of samplers) {
      const bad = (c.classes ?? []).find((k) => k >= s.numClasses);
      if (bad !== undefined) throw new RangeError(`dd2: --class: ${bad} is not a class of ${source} (0..${s.numClasses - 1})`);
    }
    ex = c.inception ? new InceptionExtractor(c.inception) : new DomainExtractor(c.featnet ?? c.dataset);
    say(`eval: feature network ${ex.name}@${ex.sha256.slice(0, 12)}, dataset ${c.dataset}, reference ${refSpec}`);
    const files = sets.map(({ path, set }) => ({ path, set: fitImages(set, ex!, c.resize, `--samples ${path}`) }));
    const nModel = c.n ?? 10000;
    const prN = Math.max(samplers.length ? nModel : 0, ...files.map((f) => f.set.n));
    const ref = await resolveReference(refSpec, ex, { prN, batch: c.batch, resize: c.resize });
    say(`eval: reference ${ref.name}; precision/recall against its first ${ref.prN} images`);
    let distance: ImageDistance | null = null;
    if (c.ppl > 0) {
      const d = ex instanceof DomainExtractor ? ex : (pplNet = new DomainExtractor(c.featnet ?? c.dataset));
      const net = d.net, size = d.inputSize;
      distance = (a, b) => perceptualDistance(net, toGraySize(a, size), toGraySize(b, size));
    }
    const rows: EvalRow[] = [];
    const count = new Map<string, number>(), used = new Set<string>();
    for (const { s } of samplers) count.set(s.name, (count.get(s.name) ?? 0) + 1);
    /** the sampler's name, with its file when several share the name, and a counter when that is not enough */
    const rowName = (s: ImageSampler, source: string): string => {
      const base = count.get(s.name)! > 1 ? `${s.name} [${basename(source)}]` : s.name;
      let name = base;
      for (let k = 2; used.has(name); k++) name = `${base} #${k}`;
      used.add(name);
      return name;
    };
    for (const { s, source } of samplers) {
      const name = rowName(s, source);
      const labels = sampleLabels(nModel, s.numClasses, c.classes, c.seed);
      const bar = hooks.progress?.(`eval ${name}`, nModel);
      const drawn = drawImages(s, labels, c.batch, c.seed, (k) => bar?.tick(k));
      bar?.done();
      const metrics = computeMetrics(fitImages(drawn, ex, c.resize, `images of ${name}`), ex, ref, { batch: c.batch, dataset: c.dataset });
      let ppl: EvalRow['ppl'] = null;
      if (distance && s.noiseShape && s.generateFromNoise) {
        const r = perceptualPathLength(s, distance, { pairs: c.ppl, seed: c.seed, batch: c.batch, classes: c.classes });
        ppl = { ...r, distance: 'dPPL (domain net)', epsilon: PPL_EPSILON };
      }
      const speed = c.speed ? measureSpeed(s, { batch: c.batch, warmup: c.warmup, repeats: c.repeats, seed: c.seed }) : null;
      rows.push({ name, source: resolve(source), steps: s.steps, metrics, ppl, speed });
      say(`eval: ${name}: FID ${metrics.fid.value.toFixed(3)} (n=${metrics.n})`);
    }
    for (const { path, set } of files) {
      const metrics = computeMetrics(set, ex, ref, { batch: c.batch, dataset: c.dataset });
      rows.push({ name: sampleSetName(path), source: resolve(path), steps: null, metrics, ppl: null, speed: null });
    }
    return { rows, reference: ref, net: `${ex.name}@${ex.sha256}` };
  } finally {
    for (const { s } of samplers) s.dispose();
    ex?.dispose();
    pplNet?.dispose();
  }
}

/** The JSON of a run (what `dd2 eval --json` prints and eval.json holds). */
export function evalJson(c: EvalConfig, r: EvalResult, seconds: number, device: string): Record<string, unknown> {
  return tableJson(r.rows, { dataset: c.dataset, net: r.net, ref: r.reference.name, seed: c.seed, device,
    sampling: c.models.length ? { ...c.sampling, n: c.n ?? 10000 } : undefined, seconds: Number(seconds.toFixed(2)) });
}
