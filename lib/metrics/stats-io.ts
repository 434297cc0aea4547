// Feature-statistics files (lib/io/npz.ts underneath):
//  - pytorch-fid stats: an .npz with `mu` (D) and `sigma` (D x D), float64 (np.savez(path, mu=, sigma=));
//    dd2 also writes `n` (int32 scalar, the sample count) when known, which pytorch-fid ignores.
//  - the ADM evaluator's reference batch (e.g. VIRTUAL_imagenet256_labeled.npz): `arr_0` uint8 NHWC
//    images, optionally `mu`/`sigma` (pool_3, 2048) and `mu_s`/`sigma_s` (spatial, 2023).
// float32 statistics are widened to float64 on read. Errors name the file, the key and the shape.
import { readNpz, writeNpz, type NpyArray } from '../io/npz.js';
import type { FeatureStats } from './fid.js';

function statsFromArrays(path: string, arrs: Record<string, NpyArray>, muKey: string, sigmaKey: string): FeatureStats {
  const mu = arrs[muKey], sigma = arrs[sigmaKey];
  const have = Object.keys(arrs).join(', ') || 'none';
  if (!mu) throw new Error(`dd2: ${path}: no '${muKey}' array (keys: ${have})`);
  if (!sigma) throw new Error(`dd2: ${path}: no '${sigmaKey}' array (keys: ${have})`);
  for (const [key, a] of [[muKey, mu], [sigmaKey, sigma]] as const) {
    if (a.dtype !== 'float64' && a.dtype !== 'float32') throw new Error(`dd2: ${path}: '${key}' is ${a.dtype}, expected float64 (or float32)`);
  }
  if (mu.shape.length !== 1) throw new Error(`dd2: ${path}: '${muKey}' has shape [${mu.shape.join(', ')}], expected [D]`);
  const d = mu.shape[0];
  if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new Error(`dd2: ${path}: '${sigmaKey}' has shape [${sigma.shape.join(', ')}], expected [${d}, ${d}] to match '${muKey}'`);
  }
  return { mu: Float64Array.from(mu.data as Float64Array), sigma: Float64Array.from(sigma.data as Float64Array) };
}

/** Writes pytorch-fid-compatible statistics (`mu`, `sigma` float64; `n` int32 when stats.n is set). */
export function writeFidStats(path: string, stats: FeatureStats, opts: { compress?: boolean } = {}): void {
  const d = stats.mu?.length;
  if (!(stats.mu instanceof Float64Array) || !(stats.sigma instanceof Float64Array)) throw new TypeError(`dd2: writeFidStats ${path}: mu and sigma must be Float64Arrays`);
  if (stats.sigma.length !== d * d) throw new RangeError(`dd2: writeFidStats ${path}: sigma has ${stats.sigma.length} elements, expected ${d} x ${d} for mu of ${d}`);
  const arrays: Parameters<typeof writeNpz>[1] = {
    mu: { dtype: 'float64', shape: [d], data: stats.mu },
    sigma: { dtype: 'float64', shape: [d, d], data: stats.sigma },
  };
  if (stats.n !== undefined) {
    if (!Number.isSafeInteger(stats.n) || stats.n < 0 || stats.n > 0x7fffffff) throw new RangeError(`dd2: writeFidStats ${path}: n must be an integer in [0, 2^31), got ${stats.n}`);
    arrays.n = { dtype: 'int32', shape: [], data: new Int32Array([stats.n]) };
  }
  writeNpz(path, arrays, opts);
}

/** Reads pytorch-fid statistics (`mu`, `sigma`; `n` when present). */
export function readFidStats(path: string): FeatureStats {
  const arrs = readNpz(path);
  const stats = statsFromArrays(path, arrs, 'mu', 'sigma');
  const n = arrs.n;
  if (n) {
    if (n.dtype !== 'int32' || n.data.length !== 1) throw new Error(`dd2: ${path}: 'n' should be one integer, got ${n.dtype} of shape [${n.shape.join(', ')}]`);
    stats.n = n.data[0];
  }
  return stats;
}

export interface AdmReference {
  /** arr_0: N x H x W x C uint8 (C = 3 for ADM batches; 1 accepted for grey data sets) */
  images: { data: Uint8Array; n: number; h: number; w: number; c: number };
  /** mu / sigma (pool_3) when the file has them */
  stats?: FeatureStats;
  /** mu_s / sigma_s (spatial, sFID) when the file has them */
  spatialStats?: FeatureStats;
}

/** Reads an ADM-evaluator reference (or sample) batch. The whole file is read into memory. */
export function readAdmReference(path: string): AdmReference {
  const arrs = readNpz(path);
  const a = arrs.arr_0;
  if (!a) throw new Error(`dd2: ${path}: no 'arr_0' array of images (keys: ${Object.keys(arrs).join(', ') || 'none'})`);
  if (a.dtype !== 'uint8') throw new Error(`dd2: ${path}: 'arr_0' is ${a.dtype}, expected uint8 images`);
  if (a.shape.length !== 4 || (a.shape[3] !== 3 && a.shape[3] !== 1)) {
    throw new Error(`dd2: ${path}: 'arr_0' has shape [${a.shape.join(', ')}], expected [N, H, W, 3] (NHWC)`);
  }
  const [n, h, w, c] = a.shape;
  const out: AdmReference = { images: { data: a.data as Uint8Array, n, h, w, c } };
  for (const [muKey, sigmaKey, field] of [['mu', 'sigma', 'stats'], ['mu_s', 'sigma_s', 'spatialStats']] as const) {
    if (arrs[muKey] || arrs[sigmaKey]) out[field] = statsFromArrays(path, arrs, muKey, sigmaKey);
  }
  return out;
}
