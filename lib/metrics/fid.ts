// Feature statistics and the Fréchet distance (FID) in float64, as pytorch-fid defines them
// (DATA-EVAL.md §3.1): μ = mean, Σ = unbiased (N-1) covariance (np.cov(feats, rowvar=False)),
// FID = ‖μ1-μ2‖² + tr Σ1 + tr Σ2 - 2 tr((Σ1 Σ2)^{1/2}). The trace of the square root comes from a
// symmetric eigendecomposition (lib/metrics/linalg.ts), which equals scipy's sqrtm trace for PSD inputs.
// Shapes: features (N x D) row-major; mu (D); sigma (D x D) row-major.
import { matmulF64, symmetrise, traceSqrtProduct } from './linalg.js';

export interface FeatureStats {
  mu: Float64Array;
  sigma: Float64Array;
  /** number of feature vectors behind the statistics (absent when a stats file did not record it) */
  n?: number;
}

type Features = Float32Array | Float64Array;

/** Streaming mean / covariance over batches of D-dimensional rows, so 50k x 2048 features need not be
 *  held at once. Each chunk is centred on its own mean and merged with the pairwise update of Chan,
 *  Golub and LeVeque (M2 += M2_b + δδ^T n_a n_b / n), which avoids the cancellation of Σx² - nμ². */
export class StatsAccumulator {
  readonly d: number;
  private n = 0;
  private readonly mean: Float64Array;
  private readonly m2: Float64Array;   // Σ (x - mean)(x - mean)^T, D x D
  private readonly chunkRows: number;
  private chunk: Float64Array | null = null;

  constructor(d: number) {
    if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`dd2: StatsAccumulator: feature dimension must be an integer >= 1, got ${d}`);
    this.d = d;
    this.mean = new Float64Array(d);
    this.m2 = new Float64Array(d * d);
    this.chunkRows = Math.max(64, Math.floor((1 << 22) / d));
  }

  /** Rows seen so far. */
  get count(): number { return this.n; }

  /** Adds `rows` feature vectors (batch: rows x D, row-major; extra trailing elements are an error). */
  add(batch: Features, rows: number): this {
    const d = this.d;
    if (!(batch instanceof Float32Array || batch instanceof Float64Array)) {
      throw new TypeError(`dd2: StatsAccumulator.add: expected a Float32Array or Float64Array, got ${(batch as object)?.constructor?.name}`);
    }
    if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError(`dd2: StatsAccumulator.add: rows must be an integer >= 0, got ${rows}`);
    if (batch.length !== rows * d) throw new RangeError(`dd2: StatsAccumulator.add: ${rows} rows of D = ${d} need ${rows * d} values, got ${batch.length}`);
    for (let r0 = 0; r0 < rows; r0 += this.chunkRows) this.addChunk(batch, r0, Math.min(rows, r0 + this.chunkRows));
    return this;
  }

  private addChunk(batch: Features, r0: number, r1: number): void {
    const d = this.d, nb = r1 - r0;
    const mb = new Float64Array(d);
    for (let r = r0; r < r1; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) {
        const x = batch[o + j];
        if (!Number.isFinite(x)) throw new RangeError(`dd2: StatsAccumulator.add: feature [${r}, ${j}] of the batch is ${x}; features must be finite`);
        mb[j] += x;
      }
    }
    for (let j = 0; j < d; j++) mb[j] /= nb;
    if (!this.chunk || this.chunk.length < nb * d) this.chunk = new Float64Array(this.chunkRows * d);
    const xc = nb * d === this.chunk.length ? this.chunk : this.chunk.subarray(0, nb * d);
    for (let r = r0; r < r1; r++) {
      const o = r * d, q = (r - r0) * d;
      for (let j = 0; j < d; j++) xc[q + j] = batch[o + j] - mb[j];
    }
    // M2_b = Xc^T Xc (D x D), then the merge.
    const m2b = matmulF64(xc, xc, d, d, nb, { transA: true });
    const na = this.n, n = na + nb, f = (na * nb) / n;
    const delta = new Float64Array(d);
    for (let j = 0; j < d; j++) delta[j] = mb[j] - this.mean[j];
    const m2 = this.m2;
    for (let i = 0; i < d; i++) {
      const di = delta[i] * f, o = i * d;
      for (let j = 0; j < d; j++) m2[o + j] += m2b[o + j] + di * delta[j];
    }
    for (let j = 0; j < d; j++) this.mean[j] += delta[j] * (nb / n);
    this.n = n;
  }

  /** μ and the unbiased covariance Σ = M2 / (N - 1), symmetrised; needs N >= 2. */
  finish(): Required<FeatureStats> {
    if (this.n < 2) throw new RangeError(`dd2: StatsAccumulator.finish: the covariance needs at least 2 feature vectors, got ${this.n}`);
    const sigma = this.m2.slice();
    const s = 1 / (this.n - 1);
    for (let i = 0; i < sigma.length; i++) sigma[i] *= s;
    return { mu: this.mean.slice(), sigma: symmetrise(sigma, this.d), n: this.n };
  }
}

/** μ (D) and unbiased Σ (D x D) of n feature vectors (features: n x d row-major), in float64. */
export function featureStats(features: Features, n: number, d: number): Required<FeatureStats> {
  return new StatsAccumulator(d).add(features, n).finish();
}

export interface FrechetParts {
  fid: number;
  /** ‖μ1 - μ2‖² */
  meanTerm: number;
  traceSigma1: number;
  traceSigma2: number;
  /** tr((Σ1 Σ2)^{1/2}) */
  traceSqrt: number;
  /** the ε added to both diagonals for the retry (0 when the first attempt was finite) */
  offset: number;
}

function checkStats(what: string, s: FeatureStats): number {
  if (!s || !(s.mu instanceof Float64Array) || !(s.sigma instanceof Float64Array)) {
    throw new TypeError(`dd2: frechetDistance: ${what} must have Float64Array mu and sigma`);
  }
  const d = s.mu.length;
  if (s.sigma.length !== d * d) throw new RangeError(`dd2: frechetDistance: ${what}.sigma has ${s.sigma.length} elements; mu has ${d}, so expected ${d} x ${d} = ${d * d}`);
  for (let i = 0; i < d; i++) if (!Number.isFinite(s.mu[i])) throw new RangeError(`dd2: frechetDistance: ${what}.mu[${i}] is ${s.mu[i]}`);
  for (let i = 0; i < d * d; i++) {
    if (!Number.isFinite(s.sigma[i])) throw new RangeError(`dd2: frechetDistance: ${what}.sigma[${Math.floor(i / d)}, ${i % d}] is ${s.sigma[i]}`);
  }
  return d;
}

function withDiagonalOffset(sigma: Float64Array, d: number, eps: number): Float64Array {
  const out = sigma.slice();
  for (let i = 0; i < d; i++) out[i * d + i] += eps;
  return out;
}

/** FID with its terms. pytorch-fid's rule: if tr sqrt is not finite (here: the eigensolver failed),
 *  add eps (1e-6) to both diagonals and retry once. */
export function frechetDistanceParts(s1: FeatureStats, s2: FeatureStats, opts: { eps?: number } = {}): FrechetParts {
  const d = checkStats('s1', s1), d2 = checkStats('s2', s2);
  if (d !== d2) throw new RangeError(`dd2: frechetDistance: feature dimensions differ (${d} vs ${d2})`);
  const eps = opts.eps ?? 1e-6;
  let meanTerm = 0, tr1 = 0, tr2 = 0;
  for (let i = 0; i < d; i++) {
    const diff = s1.mu[i] - s2.mu[i];
    meanTerm += diff * diff;
    tr1 += s1.sigma[i * d + i];
    tr2 += s2.sigma[i * d + i];
  }
  let traceSqrt = NaN, offset = 0;
  let failure = '';
  try { traceSqrt = traceSqrtProduct(s1.sigma, s2.sigma, d); } catch (e) { failure = (e as Error).message; }
  if (!Number.isFinite(traceSqrt)) {
    offset = eps;
    try {
      traceSqrt = traceSqrtProduct(withDiagonalOffset(s1.sigma, d, eps), withDiagonalOffset(s2.sigma, d, eps), d);
    } catch (e) {
      throw new Error(`dd2: frechetDistance: tr((Σ1 Σ2)^1/2) failed (${failure || 'not finite'}) and again with ${eps} added to the diagonals: ${(e as Error).message}`);
    }
    if (!Number.isFinite(traceSqrt)) throw new Error(`dd2: frechetDistance: tr((Σ1 Σ2)^1/2) is not finite even with ${eps} added to the diagonals`);
  }
  return { fid: meanTerm + tr1 + tr2 - 2 * traceSqrt, meanTerm, traceSigma1: tr1, traceSigma2: tr2, traceSqrt, offset };
}

/** The Fréchet distance between two Gaussians given by their statistics (FID for Inception features). */
export function frechetDistance(s1: FeatureStats, s2: FeatureStats, opts: { eps?: number } = {}): number {
  return frechetDistanceParts(s1, s2, opts).fid;
}
