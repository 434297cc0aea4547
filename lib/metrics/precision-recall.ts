// Improved precision and recall (Kynkäänniemi et al. 2019), as the ADM evaluator computes them
// (DATA-EVAL.md §3.5): the radius of a point is the distance to its k-th nearest neighbour within its own
// set (self excluded: the k-th smallest distance counting the zero to itself, as ADM's np.partition does,
// so a duplicate point counts as a neighbour); precision = fraction of fake points inside at least one
// real ball (distance <= radius), recall = fraction of real points inside at least one fake ball.
// Squared distances ‖x‖² + ‖y‖² - 2 x·y in float64, by blocks of rows through the addon's float64 GEMM
// (lib/metrics/linalg.ts); one pass over the real x fake block matrix serves both precision and recall.
// Shapes: a feature set is n x d row-major.
import { matmulF64 } from './linalg.js';

export interface FeatureSet { data: Float32Array | Float64Array; n: number; d: number }

export interface PrecisionRecall {
  precision: number;
  recall: number;
  /** squared k-NN radii of the real (Nr) and fake (Nf) points */
  realRadii2: Float64Array;
  fakeRadii2: Float64Array;
}

const BLOCK_ELEMENTS = 1 << 23;   // default: 64 MB of float64 distances per block

export interface PrecisionRecallOptions {
  /** distances computed per block (rows x other set's size), default 2^23; small values exercise blocking */
  blockElements?: number;
}

function asF64(what: string, s: FeatureSet, k: number): Float64Array {
  if (!s || !(s.data instanceof Float32Array || s.data instanceof Float64Array)) {
    throw new TypeError(`dd2: improvedPrecisionRecall: ${what}.data must be a Float32Array or Float64Array (n x d)`);
  }
  if (!Number.isSafeInteger(s.n) || !Number.isSafeInteger(s.d) || s.d < 1) throw new RangeError(`dd2: improvedPrecisionRecall: ${what}: n and d must be integers (d >= 1), got n = ${s.n}, d = ${s.d}`);
  if (s.data.length !== s.n * s.d) throw new RangeError(`dd2: improvedPrecisionRecall: ${what}: n x d = ${s.n} x ${s.d} needs ${s.n * s.d} values, got ${s.data.length}`);
  if (s.n <= k) throw new RangeError(`dd2: improvedPrecisionRecall: ${what} has ${s.n} points; the k = ${k} nearest-neighbour radius needs more than k`);
  const out = s.data instanceof Float64Array ? s.data : Float64Array.from(s.data);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw new RangeError(`dd2: improvedPrecisionRecall: ${what} feature [${Math.floor(i / s.d)}, ${i % s.d}] is ${out[i]}`);
  }
  return out;
}

function squaredNorms(x: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j] * x[i * d + j];
    out[i] = s;
  }
  return out;
}

/** Calls visit(r0, rows, dist2) for consecutive row blocks of the squared-distance matrix between x (nx x d)
 *  and y (ny x d): dist2 is rows x ny, clamped at 0. */
function forDistanceBlocks(x: Float64Array, nx: number, y: Float64Array, ny: number, d: number, blockElements: number,
                           visit: (r0: number, rows: number, dist2: Float64Array) => void): void {
  const nxx = squaredNorms(x, nx, d), nyy = squaredNorms(y, ny, d);
  const block = Math.max(1, Math.min(nx, Math.floor(blockElements / Math.max(1, ny))));
  const buf = new Float64Array(block * ny);
  for (let r0 = 0; r0 < nx; r0 += block) {
    const rows = Math.min(block, nx - r0);
    const dist = rows === block ? buf : buf.subarray(0, rows * ny);
    matmulF64(x.subarray(r0 * d, (r0 + rows) * d), y, rows, ny, d, { transB: true, alpha: -2, out: dist });
    for (let r = 0; r < rows; r++) {
      const a = nxx[r0 + r], o = r * ny;
      for (let j = 0; j < ny; j++) {
        const v = dist[o + j] + a + nyy[j];
        dist[o + j] = v > 0 ? v : 0;
      }
    }
    visit(r0, rows, dist);
  }
}

/** Squared distance of each point of x (n x d) to its k-th nearest neighbour in x, self excluded. */
export function kthNeighbourRadii2(x: Float64Array, n: number, d: number, k: number,
                                   blockElements = BLOCK_ELEMENTS): Float64Array {
  const radii = new Float64Array(n);
  const best = new Float64Array(k + 1);
  forDistanceBlocks(x, n, x, n, d, blockElements, (r0, rows, dist) => {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      dist[o + r0 + r] = 0;   // exactly zero to itself
      best.fill(Infinity);
      for (let j = 0; j < n; j++) {
        const v = dist[o + j];
        if (v >= best[k]) continue;
        let p = k;
        while (p > 0 && best[p - 1] > v) { best[p] = best[p - 1]; p--; }
        best[p] = v;
      }
      radii[r0 + r] = best[k];   // best[0] is the point itself
    }
  });
  return radii;
}

/** Improved precision / recall of `fake` against `real` (same d) with k-NN radii (k = 3 as ADM). */
export function improvedPrecisionRecall(real: FeatureSet, fake: FeatureSet, k = 3,
                                        opts: PrecisionRecallOptions = {}): PrecisionRecall {
  const blockElements = opts.blockElements ?? BLOCK_ELEMENTS;
  if (!Number.isSafeInteger(blockElements) || blockElements < 1) throw new RangeError(`dd2: improvedPrecisionRecall: blockElements must be an integer >= 1, got ${blockElements}`);
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`dd2: improvedPrecisionRecall: k must be an integer >= 1, got ${k}`);
  const xr = asF64('real', real, k), xf = asF64('fake', fake, k);
  if (real.d !== fake.d) throw new RangeError(`dd2: improvedPrecisionRecall: feature dimensions differ (real ${real.d}, fake ${fake.d})`);
  const d = real.d, nr = real.n, nf = fake.n;
  const realRadii2 = kthNeighbourRadii2(xr, nr, d, k, blockElements);
  const fakeRadii2 = kthNeighbourRadii2(xf, nf, d, k, blockElements);
  const realCovered = new Uint8Array(nr);
  let fakeInside = 0;
  forDistanceBlocks(xf, nf, xr, nr, d, blockElements, (r0, rows, dist) => {
    for (let r = 0; r < rows; r++) {
      const o = r * nr, rf = fakeRadii2[r0 + r];
      let inside = false;
      for (let i = 0; i < nr; i++) {
        const v = dist[o + i];
        if (v <= realRadii2[i]) inside = true;
        if (v <= rf) realCovered[i] = 1;
      }
      if (inside) fakeInside++;
    }
  });
  let covered = 0;
  for (let i = 0; i < nr; i++) covered += realCovered[i];
  return { precision: fakeInside / nf, recall: covered / nr, realRadii2, fakeRadii2 };
}
