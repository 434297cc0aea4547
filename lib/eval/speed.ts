// Wall-clock speed of an image sampler, token generation and VQ decoding timed separately:
//   latency    = batch 1, "wall-time of generating one image in the steady state" (DD2's "Time");
//   throughput = a large batch, images per second of generate + decode.
// Each setting runs `warmup` untimed rounds (allocator caches, kernel selection), then `repeats` timed
// rounds; the median of each part is reported. The GPU is synchronised before every clock read
// (native.cuda_synchronize; a no-op on the CPU), so asynchronous kernel launches are not mistaken for work done.
import { native } from '../tensor/native.js';
import { noGrad, tidy } from '../tensor/engine.js';
import type { ImageSampler } from './sampler.js';

export interface SpeedOptions {
  /** images of the throughput setting */
  batch: number;
  /** untimed rounds before timing (default 1) */
  warmup?: number;
  /** timed rounds; the median is reported (default 3) */
  repeats?: number;
  seed?: number;
  /** skip the batch-1 latency setting (default false) */
  skipLatency?: boolean;
}

export interface TimedSetting {
  batch: number;
  /** medians, milliseconds per call */
  generateMs: number;
  decodeMs: number;
  totalMs: number;
  /** batch / total seconds */
  imagesPerSecond: number;
}

export interface SpeedResult {
  sampler: string;
  /** model inferences per image */
  steps: number;
  latency: TimedSetting | null;
  throughput: TimedSetting;
  warmup: number;
  repeats: number;
}

export function median(v: readonly number[]): number {
  if (!v.length) throw new RangeError('dd2: median of nothing');
  const s = [...v].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const now = (): number => {
  native.cuda_synchronize();
  return performance.now();
};

/** Times generate() and decode() for `batch` images over warmup + repeats rounds. */
export function timeSetting(sampler: ImageSampler, batch: number, warmup: number, repeats: number, seed: number): TimedSetting {
  if (!(Number.isInteger(batch) && batch >= 1)) throw new RangeError(`dd2: speed: batch must be a positive integer, got ${batch}`);
  const labels = Int32Array.from({ length: batch }, (_, i) => i % sampler.numClasses);
  const gen: number[] = [], dec: number[] = [];
  for (let r = 0; r < warmup + repeats; r++) {
    noGrad(() => tidy(() => {
      const t0 = now();
      const lat = sampler.generate(labels, seed + r);
      const t1 = now();
      sampler.decode(lat);
      const t2 = now();
      if (r >= warmup) { gen.push(t1 - t0); dec.push(t2 - t1); }
    }));
  }
  const generateMs = median(gen), decodeMs = median(dec);
  const totalMs = generateMs + decodeMs;
  return { batch, generateMs, decodeMs, totalMs, imagesPerSecond: batch / (totalMs / 1000) };
}

/** Latency (batch 1) and throughput (o.batch) of a sampler. */
export function measureSpeed(sampler: ImageSampler, o: SpeedOptions): SpeedResult {
  const warmup = o.warmup ?? 1, repeats = o.repeats ?? 3, seed = o.seed ?? 0;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw new RangeError(`dd2: speed: warmup must be an integer >= 0, got ${warmup}`);
  if (!(Number.isInteger(repeats) && repeats >= 1)) throw new RangeError(`dd2: speed: repeats must be an integer >= 1, got ${repeats}`);
  const latency = o.skipLatency ? null : timeSetting(sampler, 1, warmup, repeats, seed);
  const throughput = timeSetting(sampler, o.batch, warmup, repeats, seed);
  return { sampler: sampler.name, steps: sampler.steps, latency, throughput, warmup, repeats };
}
