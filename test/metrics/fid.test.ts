// FID (lib/metrics/fid.ts): closed forms for diagonal and commuting Gaussians; a set against itself;
// an independent float64 Denman–Beavers square root of Σ1 Σ2 (64-d, written here); featureStats against
// a two-pass np.cov-style reference, also far from the origin; the streaming accumulator against the
// one-shot statistics; input errors; and, when DD2_PYTHON names a python with numpy + scipy, the
// pytorch-fid formula (scipy.linalg.sqrtm) on a 128-d pair.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../harness/compare.js';
import { featureStats, frechetDistance, frechetDistanceParts, StatsAccumulator, type FeatureStats } from '../../lib/metrics/fid.js';
import { matmulF64, symEig } from '../../lib/metrics/linalg.js';
import { writeFidStats } from '../../lib/metrics/stats-io.js';

function mm(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const x = a[i * n + k];
    for (let j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
  }
  return c;
}

/** Inverse by Gauss–Jordan elimination with partial pivoting. */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = a.slice(), inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    for (let j = 0; j < n; j++) {
      [m[c * n + j], m[p * n + j]] = [m[p * n + j], m[c * n + j]];
      [inv[c * n + j], inv[p * n + j]] = [inv[p * n + j], inv[c * n + j]];
    }
    const d = m[c * n + c];
    for (let j = 0; j < n; j++) { m[c * n + j] /= d; inv[c * n + j] /= d; }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) { m[r * n + j] -= f * m[c * n + j]; inv[r * n + j] -= f * inv[c * n + j]; }
    }
  }
  return inv;
}

/** Denman–Beavers iteration for the principal square root of a (non-symmetric) matrix. */
function sqrtmDenmanBeavers(a: Float64Array, n: number): Float64Array {
  let y = a.slice(), z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  for (let it = 0; it < 60; it++) {
    const yi = inverse(y, n), zi = inverse(z, n);
    const y2 = y.map((v, i) => 0.5 * (v + zi[i])), z2 = z.map((v, i) => 0.5 * (v + yi[i]));
    let change = 0, norm = 0;
    for (let i = 0; i < n * n; i++) { change += (y2[i] - y[i]) ** 2; norm += y2[i] ** 2; }
    y = y2; z = z2;
    if (Math.sqrt(change) < 1e-15 * Math.sqrt(norm)) break;
  }
  return y;
}

/** np.mean / np.cov(x, rowvar=False) by two passes over the rows. */
function referenceStats(x: ArrayLike<number>, n: number, d: number): FeatureStats {
  const mu = new Float64Array(d), sigma = new Float64Array(d * d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mu[j] += x[r * d + j];
  for (let j = 0; j < d; j++) mu[j] /= n;
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) {
    const a = x[r * d + i] - mu[i];
    for (let j = 0; j < d; j++) sigma[i * d + j] += a * (x[r * d + j] - mu[j]);
  }
  for (let i = 0; i < d * d; i++) sigma[i] /= n - 1;
  return { mu, sigma, n };
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) { e = Math.max(e, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return e / s;
}

/** Random data with correlated features: z (n x d) N(0,1) times a random mixing matrix, plus an offset. */
function correlated(rng: Rng, n: number, d: number, offset = 0): Float64Array {
  const z = Float64Array.from(rng.normal(n * d)), mix = Float64Array.from(rng.normal(d * d, 1 / Math.sqrt(d)));
  const x = matmulF64(z, mix, n, d, d);
  for (let i = 0; i < x.length; i++) x[i] += offset + 0.1 * (i % d);
  return x;
}

t.test('closed forms', async (t) => {
  const d = 50, rng = new Rng(1);
  const a = Array.from(rng.uniform(d, 0.1, 4)), b = Array.from(rng.uniform(d, 0.1, 4));
  const mu1 = Float64Array.from(rng.normal(d)), mu2 = Float64Array.from(rng.normal(d));
  let dm = 0;
  for (let i = 0; i < d; i++) dm += (mu1[i] - mu2[i]) ** 2;
  const want = dm + a.reduce((s, v, i) => s + (Math.sqrt(v) - Math.sqrt(b[i])) ** 2, 0);
  const diag = (v: number[]): Float64Array => { const m = new Float64Array(d * d); v.forEach((x, i) => { m[i * d + i] = x; }); return m; };
  const got = frechetDistance({ mu: mu1, sigma: diag(a) }, { mu: mu2, sigma: diag(b) });
  t.ok(Math.abs(got - want) < 1e-12 * want, `diagonal Σ: ${got} vs Σ(√a-√b)² + ‖Δμ‖² = ${want}`);
  // Commuting non-diagonal: Σ = Q diag Q^T with the same Q.
  const q = symEig(referenceStats(correlated(rng, 200, d), 200, d).sigma, d).vectors;
  const rot = (v: number[]): Float64Array => {
    const m = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) { let s = 0; for (let k = 0; k < d; k++) s += q[i * d + k] * v[k] * q[j * d + k]; m[i * d + j] = s; }
    return m;
  };
  const p = frechetDistanceParts({ mu: mu1, sigma: rot(a) }, { mu: mu2, sigma: rot(b) });
  t.ok(Math.abs(p.fid - want) < 1e-11 * want, `commuting Σ1, Σ2: ${p.fid} vs ${want} (|diff| ${Math.abs(p.fid - want).toExponential(2)})`);
  t.equal(p.offset, 0, 'no diagonal offset needed');
  t.ok(Math.abs(p.meanTerm - dm) < 1e-14 * dm, 'mean term');
  const same = frechetDistance({ mu: mu1, sigma: diag(a) }, { mu: mu1, sigma: diag(a) });
  t.ok(Math.abs(same) < 1e-12, `identical Gaussians: ${same}`);
});

t.test('a set against itself', async (t) => {
  const rng = new Rng(2), n = 500, d = 64;
  const s = featureStats(correlated(rng, n, d), n, d);
  const p = frechetDistanceParts(s, s);
  t.ok(Math.abs(p.fid) < 1e-6 * p.traceSigma1, `FID(X, X) = ${p.fid.toExponential(2)}, tr Σ = ${p.traceSigma1.toFixed(3)}`);
  // Rank-deficient: 40 samples in 64 dimensions.
  const s2 = featureStats(correlated(rng, 40, d), 40, d);
  const p2 = frechetDistanceParts(s2, s2);
  t.ok(Math.abs(p2.fid) < 1e-6 * p2.traceSigma1, `rank-deficient FID(X, X) = ${p2.fid.toExponential(2)}, tr Σ = ${p2.traceSigma1.toFixed(3)}`);
});

t.test('against a Denman–Beavers square root of Σ1 Σ2 (64-d)', async (t) => {
  const rng = new Rng(3), d = 64;
  const s1 = featureStats(correlated(rng, 3000, d), 3000, d);
  const s2 = featureStats(correlated(rng, 2000, d, 0.3), 2000, d);
  const root = sqrtmDenmanBeavers(mm(s1.sigma, s2.sigma, d), d);
  const resid = maxRel(mm(root, root, d), mm(s1.sigma, s2.sigma, d));
  t.ok(resid < 1e-10, `reference root squares back: ${resid.toExponential(2)}`);
  let trRoot = 0, tr1 = 0, tr2 = 0, dm = 0;
  for (let i = 0; i < d; i++) { trRoot += root[i * d + i]; tr1 += s1.sigma[i * d + i]; tr2 += s2.sigma[i * d + i]; dm += (s1.mu[i] - s2.mu[i]) ** 2; }
  const want = dm + tr1 + tr2 - 2 * trRoot;
  const p = frechetDistanceParts(s1, s2);
  t.ok(Math.abs(p.traceSqrt - trRoot) < 1e-11 * trRoot, `tr sqrt ${p.traceSqrt} vs Denman–Beavers ${trRoot} (rel ${(Math.abs(p.traceSqrt - trRoot) / trRoot).toExponential(2)})`);
  t.ok(Math.abs(p.fid - want) < 1e-10 * (tr1 + tr2), `FID ${p.fid} vs ${want}`);
  t.ok(Math.abs(frechetDistance(s2, s1) - p.fid) < 1e-10 * (tr1 + tr2), 'symmetric in its arguments');
});

t.test('featureStats and the streaming accumulator', async (t) => {
  const rng = new Rng(4), n = 1000, d = 24;
  const x = correlated(rng, n, d);
  const ref = referenceStats(x, n, d);
  const s = featureStats(x, n, d);
  t.equal(s.n, n, 'n recorded');
  t.ok(maxRel(s.mu, ref.mu) < 1e-13, `mu vs two-pass reference: ${maxRel(s.mu, ref.mu).toExponential(2)}`);
  t.ok(maxRel(s.sigma, ref.sigma) < 1e-13, `sigma (N-1) vs two-pass reference: ${maxRel(s.sigma, ref.sigma).toExponential(2)}`);
  // Float32 input is read exactly (widened, not rounded again).
  const x32 = Float32Array.from(x);
  const r32 = referenceStats(x32, n, d), s32 = featureStats(x32, n, d);
  t.ok(maxRel(s32.sigma, r32.sigma) < 1e-13, `float32 features: ${maxRel(s32.sigma, r32.sigma).toExponential(2)}`);
  // Uneven batches, including an empty one and single rows.
  const acc = new StatsAccumulator(d);
  for (const [a, b] of [[0, 1], [1, 1], [1, 2], [2, 333], [333, 334], [334, 1000]]) acc.add(x.subarray(a * d, b * d), b - a);
  const st = acc.finish();
  t.equal(acc.count, n, 'count');
  t.ok(maxRel(st.sigma, ref.sigma) < 1e-13 && maxRel(st.mu, ref.mu) < 1e-13, `streamed = one-shot (sigma ${maxRel(st.sigma, ref.sigma).toExponential(2)})`);
  // Far from the origin: mean 1e6, unit-scale spread. A one-pass Σx² - nμ² would lose ~12 digits here.
  const far = x.map((v) => v + 1e6);
  const sf = new StatsAccumulator(d);
  for (let r = 0; r < n; r += 100) sf.add(far.subarray(r * d, (r + 100) * d), 100);
  const e = maxRel(sf.finish().sigma, ref.sigma);
  t.ok(e < 1e-9, `offset 1e6: sigma error ${e.toExponential(2)} < 1e-9 (inputs themselves carry ~1e-10 rounding)`);
  t.throws(() => new StatsAccumulator(4).finish(), /at least 2 feature vectors, got 0/);
  t.throws(() => new StatsAccumulator(0), /feature dimension must be an integer >= 1/);
  t.throws(() => featureStats(new Float64Array(3), 1, 3), /at least 2 feature vectors, got 1/);
  t.throws(() => featureStats(new Float64Array(5), 2, 3), /2 rows of D = 3 need 6 values, got 5/);
  t.throws(() => featureStats(new Float64Array([1, NaN, 0, 0]), 2, 2), /feature \[0, 1\] of the batch is NaN/);
});

t.test('chunked accumulation over more rows than one chunk', async (t) => {
  const rng = new Rng(5), d = 2048, n = 2100;   // chunks of 2048 rows at D = 2048
  const x = rng.normal(n * d);
  const s = featureStats(x, n, d);
  const ref = new StatsAccumulator(d);
  ref.add(x.subarray(0, 7 * d), 7).add(x.subarray(7 * d), n - 7);
  const e = maxRel(s.sigma, ref.finish().sigma);
  t.ok(e < 1e-12, `two chunkings agree: ${e.toExponential(2)}`);
  let tr = 0;
  for (let i = 0; i < d; i++) tr += s.sigma[i * d + i];
  t.ok(Math.abs(tr / d - 1) < 0.01, `unit-variance data: mean diagonal ${(tr / d).toFixed(4)}`);
});

t.test('input errors', async (t) => {
  const s = { mu: new Float64Array(2), sigma: new Float64Array([1, 0, 0, 1]) };
  t.throws(() => frechetDistance(s, { mu: new Float64Array(3), sigma: new Float64Array(9) }), /feature dimensions differ \(2 vs 3\)/);
  t.throws(() => frechetDistance(s, { mu: new Float64Array(2), sigma: new Float64Array(3) }), /s2.sigma has 3 elements; mu has 2/);
  t.throws(() => frechetDistance({ mu: new Float64Array([0, NaN]), sigma: s.sigma }, s), /s1.mu\[1\] is NaN/);
  t.throws(() => frechetDistance(s, { mu: s.mu, sigma: new Float64Array([1, Infinity, Infinity, 1]) }), /s2.sigma\[0, 1\] is Infinity/);
});

const py = process.env.DD2_PYTHON;
const hasScipy = !!py && spawnSync(py, ['-c', 'import numpy, scipy.linalg'], { encoding: 'utf8' }).status === 0;
t.test('pytorch-fid formula with scipy (128-d)', { skip: hasScipy ? false : 'set DD2_PYTHON to a python with numpy and scipy' }, async (t) => {
  const dir = t.testdir();
  const rng = new Rng(6), d = 128;
  const s1 = featureStats(correlated(rng, 1000, d), 1000, d);
  const s2 = featureStats(correlated(rng, 800, d, 0.2), 800, d);
  writeFidStats(join(dir, 'a.npz'), s1);
  writeFidStats(join(dir, 'b.npz'), s2);
  const script = [
    'import sys, numpy as np, scipy.linalg as la',
    'a, b = np.load(sys.argv[1]), np.load(sys.argv[2])',
    "m1, s1, m2, s2 = a['mu'], a['sigma'], b['mu'], b['sigma']",
    'c, _ = la.sqrtm(s1.dot(s2), disp=False)',
    'c = c.real if np.iscomplexobj(c) else c',
    'd = m1 - m2',
    'print(repr(float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(c))))',
  ].join('\n');
  writeFileSync(join(dir, 'fid.py'), script);
  const r = spawnSync(py!, [join(dir, 'fid.py'), join(dir, 'a.npz'), join(dir, 'b.npz')], { encoding: 'utf8' });
  t.equal(r.status, 0, `python ran: ${r.stderr.slice(-400)}`);
  const want = Number(r.stdout.trim()), got = frechetDistance(s1, s2);
  t.ok(Math.abs(got - want) < 1e-9 * Math.abs(want), `dd2 ${got} vs scipy ${want} (rel ${(Math.abs(got - want) / Math.abs(want)).toExponential(2)})`);
});
