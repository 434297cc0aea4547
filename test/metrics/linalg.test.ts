// Float64 linear algebra (lib/metrics/linalg.ts, native/cpu/linalg.cpp), on both backends (LAPACK from
// OpenBLAS and the built-in Householder + QL solver): eigendecomposition residuals and orthogonality,
// including repeated and zero eigenvalues; sqrtmPSD squares back; GEMM against a float64 triple loop with
// every transpose; the d = 2048 square root within 30 s; DD2_LINALG=builtin honoured; input errors.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { Rng } from '../harness/compare.js';
import { addonPath, native } from '../../lib/tensor/native.js';
import {
  linalgBackend, matmulF64, setLinalgBackend, sqrtmPSD, symEig, symEigvals, traceSqrtProduct, transpose,
} from '../../lib/metrics/linalg.js';

const hasLapack = (() => { try { setLinalgBackend('lapack'); return true; } catch { return false; } finally { setLinalgBackend('auto'); } })();
const backends: ('lapack' | 'builtin')[] = hasLapack ? ['lapack', 'builtin'] : ['builtin'];
t.comment(`linalg backend (auto): ${linalgBackend()}`);

function naiveMatmul(a: Float64Array, b: Float64Array, M: number, N: number, K: number, ta = false, tb = false): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
      c[i * N + j] = s;
    }
  }
  return c;
}

function frob(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s) / Math.max(frob(b), 1e-300);
}

/** Random SPD A^T A / n + I (n x n), through the GEMM under test's sibling (checked separately). */
function randomSPD(rng: Rng, n: number, shift = 1): Float64Array {
  const x = Float64Array.from(rng.normal(n * n));
  const a = matmulF64(x, x, n, n, n, { transA: true, alpha: 1 / n });
  for (let i = 0; i < n; i++) a[i * n + i] += shift;
  return a;
}

/** Q diag(values) Q^T with Q a random orthogonal matrix (product of reflectors): exact spectrum known. */
function withSpectrum(rng: Rng, values: number[]): Float64Array {
  const n = values.length;
  let a: Float64Array = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = values[i];
  for (let r = 0; r < 3; r++) {
    const v = Float64Array.from(rng.normal(n));
    const vv = v.reduce((s, x) => s + x * x, 0);
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = (i === j ? 1 : 0) - (2 * v[i] * v[j]) / vv;
    a = naiveMatmul(naiveMatmul(h, a, n, n, n), h, n, n, n);
  }
  return a;
}

function checkEig(t: Test, what: string, a: Float64Array, n: number, tolRes = 1e-12): void {
  const { values, vectors } = symEig(a, n);
  for (let k = 1; k < n; k++) if (values[k] < values[k - 1]) { t.fail(`${what}: eigenvalues not ascending at ${k}`); break; }
  const av = naiveMatmul(a, vectors, n, n, n);
  let res = 0;
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) res = Math.max(res, Math.abs(av[i * n + k] - vectors[i * n + k] * values[k]));
  const scale = Math.max(1e-300, ...Array.from(values, Math.abs));
  const vtv = naiveMatmul(vectors, vectors, n, n, n, true);
  let orth = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) orth = Math.max(orth, Math.abs(vtv[i * n + j] - (i === j ? 1 : 0)));
  t.ok(res / scale < tolRes, `${what}: max |A v - λ v| / max|λ| = ${(res / scale).toExponential(2)} < ${tolRes}`);
  t.ok(orth < 1e-12, `${what}: max |V^T V - I| = ${orth.toExponential(2)} < 1e-12`);
  const vals = symEigvals(a, n);
  t.ok(relDiff(vals, values) < 1e-13, `${what}: eigenvalues-only run agrees (${relDiff(vals, values).toExponential(2)})`);
}

for (const backend of backends) {
  t.test(`eigendecomposition (${backend})`, async (t) => {
    setLinalgBackend(backend);
    t.teardown(() => setLinalgBackend('auto'));
    t.equal(native.linalg_backend(), backend, 'backend selected');
    const rng = new Rng(11);
    for (const n of [1, 2, 3, 7, 100]) checkEig(t, `random SPD n = ${n}`, randomSPD(rng, n), n);
    const sym = Float64Array.from(rng.normal(40 * 40));
    for (let i = 0; i < 40; i++) for (let j = 0; j < i; j++) sym[j * 40 + i] = sym[i * 40 + j];
    checkEig(t, 'indefinite symmetric n = 40', sym, 40);
    // Repeated and zero eigenvalues (rank-deficient covariances have many).
    const spec = [0, 0, 0, 0, 1, 1, 1, 2, 2, 5, 1e-9, 3, 3, 3, 3, 7, 0, 0.5, 0.5, 4];
    const a = withSpectrum(rng, spec);
    checkEig(t, 'repeated / zero eigenvalues n = 20', a, 20);
    const got = symEigvals(a, 20), want = [...spec].sort((x, y) => x - y);
    let err = 0;
    for (let i = 0; i < 20; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
    t.ok(err < 1e-13, `known spectrum recovered: max error ${err.toExponential(2)}`);
    // Only the lower triangle is read.
    const lower = randomSPD(rng, 9);
    const junk = lower.slice();
    for (let i = 0; i < 9; i++) for (let j = i + 1; j < 9; j++) junk[i * 9 + j] = 1e6;
    t.ok(relDiff(symEigvals(junk, 9), symEigvals(lower, 9)) < 1e-14, 'upper triangle ignored');
    const diag = new Float64Array([3, 0, 0, 0, -1, 0, 0, 0, 2]);
    t.same(Array.from(symEigvals(diag, 3)), [-1, 2, 3], 'diagonal matrix: exact eigenvalues, ascending');
  });

  t.test(`sqrtmPSD and traceSqrtProduct (${backend})`, async (t) => {
    setLinalgBackend(backend);
    t.teardown(() => setLinalgBackend('auto'));
    const rng = new Rng(5);
    for (const n of [1, 2, 7, 100]) {
      const a = randomSPD(rng, n);
      const s = sqrtmPSD(a, n);
      const e = relDiff(matmulF64(s, s, n, n, n), a);
      t.ok(e < 1e-12, `n = ${n}: ‖S S - A‖_F / ‖A‖_F = ${e.toExponential(2)} < 1e-12`);
      t.same(s, transpose(s, n, n), `n = ${n}: S is exactly symmetric`);
    }
    // Rank-deficient PSD (a 30-d covariance of 10 points): square root still squares back.
    const x = Float64Array.from(rng.normal(10 * 30));
    const c = matmulF64(x, x, 30, 30, 10, { transA: true, alpha: 1 / 9 });
    const e = relDiff(matmulF64(sqrtmPSD(c, 30), sqrtmPSD(c, 30), 30, 30, 30), c);
    t.ok(e < 1e-8, `rank 10 of 30: ‖S S - A‖_F / ‖A‖_F = ${e.toExponential(2)} < 1e-8 (clipped rounding negatives)`);
    t.ok(Math.abs(sqrtmPSD(new Float64Array([4]), 1)[0] - 2) < 1e-15, '1 x 1: sqrt(4) = 2');
    t.equal(sqrtmPSD(new Float64Array([-1e-17]), 1)[0], 0, 'tiny negative eigenvalue clipped to 0');
    // tr((S1 S2)^1/2) with commuting S1 = Q D1 Q^T, S2 = Q D2 Q^T: Σ sqrt(d1 d2).
    const d1 = [1, 2, 3, 4, 5, 6, 7, 8], d2 = [8, 0.5, 2, 1, 0, 3, 9, 0.25];
    const q = symEig(randomSPD(rng, 8), 8).vectors;
    const build = (dv: number[]): Float64Array => {
      const m = new Float64Array(64);
      for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) for (let k = 0; k < 8; k++) m[i * 8 + j] += q[i * 8 + k] * dv[k] * q[j * 8 + k];
      return m;
    };
    for (const dz of [d2, d2.map((v) => v || 0.125)]) {
      // A zero eigenvalue of S1 S2 comes out as ±(rounding of ‖M‖ ~ 1e-15), whose square root is ~3e-8:
      // the inherent sensitivity of tr sqrt near singular products (scipy's sqrtm shares it).
      const tol = dz.includes(0) ? 1e-7 : 1e-12 * 20;
      const want = d1.reduce((s, v, i) => s + Math.sqrt(v * dz[i]), 0);
      const got = traceSqrtProduct(build(d1), build(dz), 8);
      t.ok(Math.abs(got - want) < tol, `commuting pair${dz.includes(0) ? ' (one zero eigenvalue)' : ''}: tr sqrt = ${got} vs ${want}, |diff| ${Math.abs(got - want).toExponential(2)} < ${tol}`);
    }
  });

  t.test(`gemm_f64 against a triple loop (${backend})`, async (t) => {
    setLinalgBackend(backend);
    t.teardown(() => setLinalgBackend('auto'));
    const rng = new Rng(3);
    for (const [M, N, K] of [[1, 1, 1], [5, 3, 7], [37, 70, 129], [130, 17, 3], [4, 600, 9]]) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const a = Float64Array.from(rng.normal(M * K)), b = Float64Array.from(rng.normal(K * N));
          const got = matmulF64(a, b, M, N, K, { transA: ta, transB: tb, alpha: 0.75 });
          const want = naiveMatmul(a, b, M, N, K, ta, tb).map((v) => 0.75 * v);
          const e = relDiff(got, want);
          t.ok(e < 1e-14, `${M}x${N}x${K} ta=${ta} tb=${tb}: rel error ${e.toExponential(2)} < 1e-14`);
        }
      }
    }
    const c = new Float64Array([1, 2, 3, 4]).fill(NaN);
    native.gemm_f64(c, new Float64Array([1, 2, 3, 4]), new Float64Array([1, 0, 0, 1]), 2, 2, 2, false, false, 1, 0);
    t.same(Array.from(c), [1, 2, 3, 4], 'beta = 0 overwrites NaNs in C');
    native.gemm_f64(c, new Float64Array([1, 2, 3, 4]), new Float64Array([1, 0, 0, 1]), 2, 2, 2, false, false, 1, 1);
    t.same(Array.from(c), [2, 4, 6, 8], 'beta = 1 accumulates');
    t.same(Array.from(matmulF64(new Float64Array(0), new Float64Array(0), 2, 2, 0)), [0, 0, 0, 0], 'K = 0 gives zeros');
  });
}

t.test('d = 2048 square root within 30 s', async (t) => {
  const n = 2048, rng = new Rng(2048);
  const a = randomSPD(rng, n);
  const t0 = performance.now();
  const s = sqrtmPSD(a, n);
  const secs = (performance.now() - t0) / 1000;
  const e = relDiff(matmulF64(s, s, n, n, n), a);
  t.ok(e < 1e-8, `‖S S - A‖_F / ‖A‖_F = ${e.toExponential(2)} < 1e-8`);
  t.ok(secs < 30, `sqrtmPSD(2048) took ${secs.toFixed(1)} s (< 30 s) with ${linalgBackend()}`);
});

t.test('built-in solver at d = 1024 (2048 with DD2_LINALG_FULL=1)', async (t) => {
  setLinalgBackend('builtin');
  t.teardown(() => setLinalgBackend('auto'));
  const n = process.env.DD2_LINALG_FULL === '1' ? 2048 : 1024, rng = new Rng(1024);
  const a = randomSPD(rng, n);
  const t0 = performance.now();
  const s = sqrtmPSD(a, n);
  const secs = (performance.now() - t0) / 1000;
  const e = relDiff(matmulF64(s, s, n, n, n), a);
  t.ok(e < 1e-8, `builtin n = ${n}: ‖S S - A‖_F / ‖A‖_F = ${e.toExponential(2)} < 1e-8`);
  t.ok(secs < 30, `builtin sqrtmPSD(${n}) took ${secs.toFixed(1)} s (< 30 s)`);
  if (hasLapack) {
    setLinalgBackend('lapack');
    const e2 = relDiff(s, sqrtmPSD(a, n));
    t.ok(e2 < 1e-12, `builtin and LAPACK square roots agree: ${e2.toExponential(2)}`);
  }
});

t.test('DD2_LINALG=builtin is honoured', async (t) => {
  const script = `console.log(require(${JSON.stringify(addonPath)}).linalg_backend_description())`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, DD2_LINALG: 'builtin' } });
  t.equal(r.status, 0, `child ran: ${r.stderr.slice(0, 400)}`);
  t.match(r.stdout, /^builtin .*forced/, `child reports: ${r.stdout.trim()}`);
});

t.test('input errors', async (t) => {
  t.throws(() => symEig(new Float64Array(5), 2), /expected n x n = 4 elements/);
  t.throws(() => symEig(new Float32Array(4) as unknown as Float64Array, 2), /expected a Float64Array/);
  t.throws(() => symEig(new Float64Array([1, NaN, NaN, 1]), 2), /entry \(1, 0\) is nan/i);
  t.throws(() => matmulF64(new Float64Array(3), new Float64Array(4), 2, 2, 2), /A must be a Float64Array of 4/);
  t.throws(() => native.sym_eig_f64(3, new Float64Array(9), new Float64Array(2), true), /w has 2 elements, needs 3/);
  const shared = new Float64Array(8);
  t.throws(() => native.gemm_f64(shared.subarray(0, 4), shared.subarray(2, 6), new Float64Array(4), 2, 2, 2, false, false, 1, 0), /c overlaps a/);
  t.throws(() => setLinalgBackend('magic' as 'auto'), /expected 'auto', 'builtin' or 'lapack'/);
});
