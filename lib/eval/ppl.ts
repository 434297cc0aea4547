// Perceptual path length of a noise-driven sampler (StyleGAN's "PPL, Z space, full path"; DATA-EVAL.md
// §3.6–3.7, METHOD.md §7), our protocol, written next to every number:
//   - the noise of one image (N, C) is flattened to z ∈ R^D, D = N·C; two draws z0, z1 ~ N(0, I);
//   - t ~ U(0, 1); both ends are normalised to the unit sphere and spherically interpolated (slerp) to t and
//     t + ε, ε = 1e-4, as StyleGAN's code does; the unit result is then rescaled to radius √D, the norm that
//     StyleGAN's mapping network gives every z by its second-moment normalisation (our generator has no such
//     layer and was trained on N(0, I) noise, whose norm concentrates at √D);
//   - the same class label at both ends (drawn uniformly per pair, or from a given list);
//   - both images generated in float32, decoded, compared with a perceptual distance d (here the domain
//     feature network's LPIPS-style distance: "dPPL (domain net)", not StyleGAN's LPIPS-VGG16);
//   - each pair gives d / ε²; values below the 1st percentile (numpy 'lower') and above the 99th ('higher')
//     are dropped; PPL is the mean of the rest.
// Letters: B pairs per batch, N tokens, C code dimension, D = N·C, ch channels, S image side.
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { slice } from '../tensor/ops/shape.js';
import { axisWeights } from '../data/resize.js';
import type { ImageSampler } from './sampler.js';

/** Distance between two image batches (B, ch, S, S) in [-1, 1] -> (B) */
export type ImageDistance = (a: Tensor, b: Tensor) => Tensor;

export const PPL_EPSILON = 1e-4;

export interface PplOptions {
  /** number of interpolation pairs */
  pairs: number;
  seed: number;
  /** pairs per generator call (each call generates 2·batch images) */
  batch: number;
  /** interpolation step (default 1e-4) */
  epsilon?: number;
  /** class labels to draw from (default: all classes of the sampler) */
  classes?: readonly number[];
}

export interface PplSamples {
  /** d / ε² per pair */
  values: Float64Array;
  /** t of each pair and the angle between its two noise draws (radians) */
  t: Float64Array;
  angle: Float64Array;
  labels: Int32Array;
  /** D = N·C */
  dim: number;
}

/**
 * StyleGAN's slerp between the directions of a and b (length D each) at t, scaled to `radius`; out gets the
 * result. Returns the angle between a and b. float64 throughout.
 */
export function slerpScaled(a: ArrayLike<number>, b: ArrayLike<number>, t: number, radius: number, out: Float64Array): number {
  const D = out.length;
  let na = 0, nb = 0;
  for (let i = 0; i < D; i++) { na += a[i] * a[i]; nb += b[i] * b[i]; }
  na = Math.sqrt(na); nb = Math.sqrt(nb);
  if (!(na > 0 && nb > 0)) throw new RangeError('dd2: ppl: a noise draw has zero norm');
  let dot = 0;
  for (let i = 0; i < D; i++) dot += (a[i] / na) * (b[i] / nb);
  dot = Math.min(1, Math.max(-1, dot));
  const omega = Math.acos(dot), p = t * omega;
  // c = unit(b̂ − dot·â): the direction orthogonal to â in the plane of the two
  let nc = 0;
  for (let i = 0; i < D; i++) { const c = b[i] / nb - dot * a[i] / na; out[i] = c; nc += c * c; }
  nc = Math.sqrt(nc);
  const cp = Math.cos(p), sp = nc > 0 ? Math.sin(p) / nc : 0;
  let nr = 0;
  for (let i = 0; i < D; i++) { const v = (a[i] / na) * cp + out[i] * sp; out[i] = v; nr += v * v; }
  nr = Math.sqrt(nr);
  for (let i = 0; i < D; i++) out[i] *= radius / nr;
  return omega;
}

/** The per-pair values d / ε² (unfiltered) of `pairs` interpolation pairs. */
export function pplSamples(sampler: ImageSampler, distance: ImageDistance, o: PplOptions): PplSamples {
  if (!sampler.noiseShape || !sampler.generateFromNoise) {
    throw new Error(`dd2: ppl: sampler '${sampler.name}' is not driven by a noise input (PPL needs generateFromNoise)`);
  }
  if (!(Number.isInteger(o.pairs) && o.pairs >= 1)) throw new RangeError(`dd2: ppl: pairs must be a positive integer, got ${o.pairs}`);
  if (!(Number.isInteger(o.batch) && o.batch >= 1)) throw new RangeError(`dd2: ppl: batch must be a positive integer, got ${o.batch}`);
  const eps = o.epsilon ?? PPL_EPSILON;
  const [N, C] = sampler.noiseShape, D = N * C, radius = Math.sqrt(D);
  const classes = o.classes ?? Array.from({ length: sampler.numClasses }, (_, i) => i);
  if (!classes.length) throw new RangeError('dd2: ppl: no classes to draw from');
  const gen = new Generator(o.seed);
  const out: PplSamples = { values: new Float64Array(o.pairs), t: new Float64Array(o.pairs), angle: new Float64Array(o.pairs),
    labels: new Int32Array(o.pairs), dim: D };
  const za = new Float64Array(D), zb = new Float64Array(D);
  for (let s = 0; s < o.pairs; s += o.batch) {
    const B = Math.min(o.batch, o.pairs - s);
    const z0 = gen.normal([B, D], 'cpu'), z1 = gen.normal([B, D], 'cpu'), u = gen.uniform([2, B], 'cpu');
    const a0 = z0.toFloat32Array(), a1 = z1.toFloat32Array(), uu = u.toFloat32Array();
    z0.dispose(); z1.dispose(); u.dispose();
    const noise = new Float32Array(2 * B * D), labels = new Int32Array(2 * B);
    for (let i = 0; i < B; i++) {
      const t = uu[i], label = classes[Math.min(classes.length - 1, Math.floor(uu[B + i] * classes.length))];
      const zi0 = a0.subarray(i * D, (i + 1) * D), zi1 = a1.subarray(i * D, (i + 1) * D);
      out.angle[s + i] = slerpScaled(zi0, zi1, t, radius, za);
      slerpScaled(zi0, zi1, t + eps, radius, zb);
      noise.set(za, i * D);
      noise.set(zb, (B + i) * D);
      labels[i] = labels[B + i] = label;
      out.t[s + i] = t;
      out.labels[s + i] = label;
    }
    const d = noGrad(() => tidy(() => {
      const lat = sampler.generateFromNoise!(labels, tensor(noise, [2 * B, N, C]));
      const img = sampler.decode(lat);                                     // (2B, ch, S, S)
      return distance(slice(img, 0, 0, B), slice(img, 0, B, 2 * B)).toFloat32Array();
    }));
    for (let i = 0; i < B; i++) out.values[s + i] = d[i] / (eps * eps);
  }
  return out;
}

export interface PplResult {
  /** mean of the values within [1st, 99th] percentile */
  value: number;
  /** pairs drawn, and pairs kept by the percentile filter */
  n: number;
  kept: number;
  /** the filter's bounds */
  lo: number;
  hi: number;
}

/** numpy.percentile of sorted values with method 'lower' (q in [0, 100]; numpy's index q/100·(n−1)). */
export const percentileLower = (s: Float64Array, q: number): number => s[Math.floor((q / 100) * (s.length - 1))];
/** ... with method 'higher'. */
export const percentileHigher = (s: Float64Array, q: number): number => s[Math.ceil((q / 100) * (s.length - 1))];

/** StyleGAN's aggregation: drop values below the 1st ('lower') and above the 99th ('higher') percentile, mean. */
export function pplAggregate(values: Float64Array): PplResult {
  if (!values.length) throw new RangeError('dd2: ppl: no values');
  const s = Float64Array.from(values).sort();
  if (Number.isNaN(s[s.length - 1])) throw new RangeError('dd2: ppl: a distance is NaN');
  const lo = percentileLower(s, 1), hi = percentileHigher(s, 99);
  let sum = 0, kept = 0;
  for (const v of values) if (v >= lo && v <= hi) { sum += v; kept++; }
  return { value: sum / kept, n: values.length, kept, lo, hi };
}

/** PPL of a noise-driven sampler under `distance` (see the protocol at the top of this file). */
export function perceptualPathLength(sampler: ImageSampler, distance: ImageDistance, o: PplOptions): PplResult {
  return pplAggregate(pplSamples(sampler, distance, o).values);
}

/**
 * Float images (B, ch, S, S) -> (B, 1, size, size) on the host in float64 (no quantisation: PPL compares images
 * 1e-4 apart): channels averaged with the ITU-R 601 luma weights when ch = 3, then the same area-average /
 * bilinear resampling as lib/data/resize.ts. Returns x itself when it already has that shape.
 */
export function toGraySize(x: Tensor, size: number): Tensor {
  const [B, ch, H, W] = x.shape;
  if (x.rank !== 4 || (ch !== 1 && ch !== 3)) throw new TypeError(`dd2: ppl: expected images (B, 1|3, H, W), got ${x.describe()}`);
  if (ch === 1 && H === size && W === size) return x;
  const v = x.toFloat32Array(), HW = H * W;
  const gray = new Float64Array(B * HW);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < HW; p++) {
      gray[b * HW + p] = ch === 1 ? v[b * HW + p]
        : 0.299 * v[(b * 3) * HW + p] + 0.587 * v[(b * 3 + 1) * HW + p] + 0.114 * v[(b * 3 + 2) * HW + p];
    }
  }
  const ay = axisWeights(H, size), ax = axisWeights(W, size);
  const out = new Float32Array(B * size * size), rows = new Float64Array(size * W);
  for (let b = 0; b < B; b++) {
    for (let oy = 0; oy < size; oy++) {
      for (let xw = 0; xw < W; xw++) {
        let s = 0;
        for (let k = 0; k < ay.index[oy].length; k++) s += ay.weight[oy][k] * gray[b * HW + ay.index[oy][k] * W + xw];
        rows[oy * W + xw] = s;
      }
    }
    for (let oy = 0; oy < size; oy++) {
      for (let ox = 0; ox < size; ox++) {
        let s = 0;
        for (let k = 0; k < ax.index[ox].length; k++) s += ax.weight[ox][k] * rows[oy * W + ax.index[ox][k]];
        out[(b * size + oy) * size + ox] = s;
      }
    }
  }
  return tensor(out, [B, 1, size, size], { device: x.device });
}
