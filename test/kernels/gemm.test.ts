// native.gemm (cpu/gemm.cpp, cpu/gemm-builtin.cpp) against the float64 reference in test/ref/gemm.ts:
// every transpose combination, odd sizes, batches with broadcast strides, alpha/beta (beta = 0 over a
// NaN-filled C), K = 0; each case on both backends ('builtin' and 'openblas'). Without DD2_GEMM_ISA set,
// the built-in kernels the dispatch did not pick (avx2, scalar) are re-run in child processes.
import t from 'tap';
import type { Test } from 'tap';
import { fileURLToPath } from 'node:url';
import { native } from '../../lib/tensor/native.js';
import { Rng, expectCloseScaled, EPS32 } from '../harness/compare.js';
import { refGemm, gemmScale } from '../ref/gemm.js';

// Tolerance: max |got - want| / scale <= TOL_C * (K + 4) * EPS32, scale = |alpha| sum_k |a||b| + |beta c|
// (the +4 covers the roundings of the alpha/beta epilogue, which dominate at tiny K). A naive float32
// dot product may reach ~K * EPS32; blocked kernels sum in shorter chains. Measured worst
// err/((K+4)*EPS32), printed by the 'summary' test, on an avx512f host, identical for builtin avx512f,
// avx2, scalar and openblas: 0.19 for K < 33 (about 1 ulp at K = 1), 0.07 for K >= 33.
// TOL_C = 0.5 leaves 2.5x headroom at small K and 7x at large K.
const TOL_C = 0.5;
const tolFor = (K: number): number => TOL_C * (K + 4) * EPS32;

const onlyBuiltin = process.env.DD2_GEMM_TEST_BACKENDS === 'builtin';
const backends: string[] = ['builtin'];
let haveOpenblas = false;
try {
  native.gemm_set_backend('openblas');
  haveOpenblas = true;
  if (!onlyBuiltin) backends.push('openblas');
} catch (e) {
  t.comment(`openblas backend unavailable, testing builtin only: ${(e as Error).message}`);
}
native.gemm_set_backend('builtin');
const builtinDesc = native.build_info().blas;
t.comment(`builtin kernel: ${builtinDesc}; backends: ${backends.join(', ')}`);
const forced = process.env.DD2_GEMM_ISA;
if (forced && native.build_info().cpuFeatures.split(' ').includes(forced === 'avx2' ? 'avx2' : 'avx512f'))
  t.match(builtinDesc, forced === 'scalar' ? 'scalar' : forced, `DD2_GEMM_ISA=${forced} picks that kernel`);

interface Case {
  name: string; batch?: number; M: number; N: number; K: number; ta: boolean; tb: boolean;
  sa?: number; sb?: number; sc?: number; alpha?: number; beta?: number; nanC?: boolean;
}

const rng = new Rng(1234);
const worst = new Map<string, number>();   // 'backend K-range' -> max err / ((K+4) EPS32), for the note above

function alloc(bytes: number): number { return native.storage_alloc(0, Math.max(4, bytes), false); }

/** Runs one case on every backend; inputs and reference are computed once. */
function runCase(tt: Test, cs: Case): void {
  const batch = cs.batch ?? 1, { M, N, K, ta, tb } = cs;
  const sa = cs.sa ?? M * K, sb = cs.sb ?? K * N, sc = cs.sc ?? M * N;
  const alpha = cs.alpha ?? 1, beta = cs.beta ?? 0;
  const aLen = (batch - 1) * sa + M * K, bLen = (batch - 1) * sb + K * N, cLen = (batch - 1) * sc + M * N;
  const a = rng.uniform(aLen), b = rng.uniform(bLen);
  const c0 = cs.nanC ? new Float32Array(cLen).fill(NaN) : rng.uniform(cLen);
  if (cs.nanC && sc > M * N) for (let i = 0; i < cLen; i++) if (i % sc >= M * N) c0[i] = 7;   // gaps stay finite
  const want = refGemm(c0, a, b, batch, M, N, K, ta, tb, sa, sb, sc, alpha, beta);
  const scale = gemmScale(c0, a, b, batch, M, N, K, ta, tb, sa, sb, sc, alpha, beta);
  // gaps between batch matrices (strideC > M*N) have scale 0: any change there fails the comparison
  for (const be of backends) {
    native.gemm_set_backend(be);
    const ia = alloc(aLen * 4), ib = alloc(bLen * 4), ic = alloc(cLen * 4);
    const got = new Float32Array(cLen);
    try {
      native.storage_write(ia, 0, a);
      native.storage_write(ib, 0, b);
      native.storage_write(ic, 0, c0);
      native.gemm(ic, ia, ib, batch, M, N, K, ta, tb, sa, sb, sc, alpha, beta);
      native.storage_read(ic, 0, got);
    } finally {
      for (const id of [ia, ib, ic]) native.storage_free(id);
    }
    let err = 0;
    for (let i = 0; i < cLen; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / Math.max(scale[i], 1e-30));
    const key = `${be} ${K < 33 ? 'K<33' : 'K>=33'}`;
    worst.set(key, Math.max(worst.get(key) ?? 0, err / ((K + 4) * EPS32)));
    // explicit, because expectCloseScaled lets a NaN through unless it is the last element (see below)
    tt.ok(got.every(Number.isFinite), `${be} ${cs.name}: finite${cs.nanC ? ' (beta=0 ignores NaN in C)' : ''}`);
    expectCloseScaled(tt, `${be} ${cs.name}`, got, want, scale, tolFor(K));
  }
}

const tn = (ta: boolean, tb: boolean): string => `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;
const combos: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

t.test('sizes x transposes', async (tt) => {
  const shapes: [number, number, number][] = [
    [1, 1, 1], [7, 7, 7], [33, 33, 33], [65, 65, 65], [130, 130, 130],
    [1, 65, 130], [130, 1, 33], [7, 130, 65], [33, 7, 1], [300, 290, 310],
  ];
  for (const [ta, tb] of combos)
    for (const [M, N, K] of shapes) runCase(tt, { name: `${tn(ta, tb)} ${M}x${N}x${K}`, M, N, K, ta, tb, alpha: 1 });
});

t.test('alpha and beta', async (tt) => {
  for (const [ta, tb] of combos) {
    runCase(tt, { name: `${tn(ta, tb)} beta=0 NaN C`, M: 37, N: 45, K: 70, ta, tb, alpha: -0.75, beta: 0, nanC: true });
    runCase(tt, { name: `${tn(ta, tb)} beta=1`, M: 37, N: 45, K: 70, ta, tb, alpha: 1.5, beta: 1 });
    runCase(tt, { name: `${tn(ta, tb)} beta=0.5`, M: 37, N: 45, K: 70, ta, tb, alpha: 2, beta: 0.5 });
  }
  // large enough for the built-in kernel to split K into several blocks (beta applies to the first only)
  runCase(tt, { name: 'NN 50x70x900 beta=0.5', M: 50, N: 70, K: 900, ta: false, tb: false, alpha: 0.5, beta: 0.5 });
  runCase(tt, { name: 'NN 200x40x900 beta=0 NaN C', M: 200, N: 40, K: 900, ta: false, tb: false, beta: 0, nanC: true });
});

t.test('batches and broadcast strides', async (tt) => {
  const M = 19, N = 23, K = 29;
  for (const [ta, tb] of combos) {
    const p = tn(ta, tb);
    runCase(tt, { name: `${p} batch 3 contiguous`, batch: 3, M, N, K, ta, tb, alpha: 1.25, beta: 0.5 });
    runCase(tt, { name: `${p} batch 3 strideA=0`, batch: 3, M, N, K, ta, tb, sa: 0, beta: 0 });
    runCase(tt, { name: `${p} batch 3 strideB=0`, batch: 3, M, N, K, ta, tb, sb: 0, beta: 1 });
  }
  // padded batch layout: gaps between matrices, every stride larger than the matrix
  runCase(tt, { name: 'NN batch 3 padded strides', batch: 3, M, N, K, ta: false, tb: false,
    sa: M * K + 5, sb: K * N + 3, sc: M * N + 11, alpha: -1, beta: 0, nanC: true });
  runCase(tt, { name: 'TN batch 3 both broadcast', batch: 3, M: 70, N: 66, K: 40, ta: true, tb: false, sa: 0, sb: 0 });
});

t.test('K = 0 gives beta * C', async (tt) => {
  runCase(tt, { name: 'K=0 beta=0 NaN C', M: 9, N: 17, K: 0, ta: false, tb: false, beta: 0, nanC: true });
  runCase(tt, { name: 'K=0 beta=0.5', M: 9, N: 17, K: 0, ta: true, tb: true, beta: 0.5 });
  runCase(tt, { name: 'K=0 beta=1 batch 2', batch: 2, M: 4, N: 5, K: 0, ta: false, tb: true, beta: 1 });
});

t.test('the comparison rejects a wrong result', async (tt) => {
  // A recording stand-in for Test, so the expected rejection does not fail this file.
  const seen: string[] = [];
  const probe = { pass: (m: string) => { seen.push(`pass ${m}`); }, fail: (m: string) => { seen.push(`fail ${m}`); } };
  const M = 33, N = 33, K = 65;
  const a = rng.uniform(M * K), b = rng.uniform(K * N), c = new Float32Array(M * N);
  const want = refGemm(c, a, b, 1, M, N, K, false, false, M * K, K * N, M * N, 1, 0);
  const scale = gemmScale(c, a, b, 1, M, N, K, false, false, M * K, K * N, M * N, 1, 0);
  const got = Float32Array.from(want);
  tt.ok(expectCloseScaled(probe as unknown as Test, 'exact', got, want, scale, tolFor(K)), 'rounded reference passes');
  // one element off by 3x the tolerance: what a wrong k-block or a lost edge column would look like, at its mildest
  got[5 * N + 7] += 3 * tolFor(K) * scale[5 * N + 7];
  tt.notOk(expectCloseScaled(probe as unknown as Test, 'perturbed', got, want, scale, tolFor(K)),
    'one element 3x past the tolerance is rejected');
  got[5 * N + 7] = NaN;
  tt.notOk(expectCloseScaled(probe as unknown as Test, 'nan', got, want, scale, tolFor(K)), 'a NaN is rejected');
  tt.match(seen[1], /^fail perturbed/, 'the failure message names the case');
});

t.test('other built-in kernels (child processes)', { skip: !!process.env.DD2_GEMM_ISA }, async (tt) => {
  for (const isa of ['avx2', 'scalar']) {
    tt.spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)],
      { env: { ...process.env, DD2_GEMM_ISA: isa, DD2_GEMM_TEST_BACKENDS: 'builtin' } }, `builtin ${isa}`);
  }
});

t.test('summary', async (tt) => {
  tt.comment(`worst err/((K+4)*EPS32): ${[...worst].map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}`);
  native.gemm_set_backend('auto');
  // Auto prefers OpenBLAS unless it runs its generic Prescott kernels (then the vector built-in kernel).
  const generic = / Prescott /.test(native.build_info().blas) || /generic Prescott/.test(native.build_info().blas);
  const vectorBuiltin = !/scalar/.test(builtinDesc);
  tt.equal(native.gemm_get_backend(), haveOpenblas && !(generic && vectorBuiltin) ? 'openblas' : 'builtin', 'backend reset to auto');
});
