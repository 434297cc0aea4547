// Float64 dense linear algebra for the metrics: symmetric eigendecomposition, the PSD matrix square
// root and tr((S1 S2)^{1/2}) for the Fréchet distance, and a float64 GEMM. All matrices are row-major
// Float64Arrays of n x n (or M x K ...) elements. The work runs in the native addon (native/cpu/linalg.cpp):
// LAPACK dsyevd_ and cblas_dgemm from OpenBLAS when it loads, else a built-in solver (env DD2_LINALG=builtin
// forces it); linalgBackend() says which. Inputs are never modified.
import { native } from '../tensor/native.js';

export interface SymEig {
  /** eigenvalues, ascending (n) */
  values: Float64Array;
  /** n x n row-major; column k is the unit eigenvector of values[k], so A = V diag(values) V^T */
  vectors: Float64Array;
}

function checkSquare(what: string, a: ArrayLike<number>, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`dd2: ${what}: n must be an integer >= 0, got ${n}`);
  if (!(a instanceof Float64Array)) throw new TypeError(`dd2: ${what}: expected a Float64Array (n x n row-major), got ${(a as object)?.constructor?.name}`);
  if (a.length !== n * n) throw new RangeError(`dd2: ${what}: expected n x n = ${n * n} elements for n = ${n}, got ${a.length}`);
}

/** 'lapack' or 'builtin' plus the library or the reason LAPACK is not used, e.g.
 *  "lapack (libopenblas.so.0: dsyevd_, cblas_dgemm)". */
export function linalgBackend(): string {
  return native.linalg_backend_description();
}

/** Selects the backend for later calls ('auto' = LAPACK when loaded). Throws if 'lapack' is unavailable. */
export function setLinalgBackend(name: 'auto' | 'builtin' | 'lapack'): void {
  native.linalg_set_backend(name);
}

/** Eigenvalues (ascending) and eigenvectors in rows: row k of `rows` is the eigenvector of values[k].
 *  The addon's native layout; used internally to avoid a transpose. */
function eigRows(a: Float64Array, n: number, vectors: boolean): { values: Float64Array; rows: Float64Array } {
  const rows = a.slice();
  const values = new Float64Array(n);
  native.sym_eig_f64(n, rows, values, vectors);
  return { values, rows };
}

/** Eigendecomposition of the symmetric a (n x n; only its lower triangle is read). */
export function symEig(a: Float64Array, n: number): SymEig {
  checkSquare('symEig', a, n);
  const { values, rows } = eigRows(a, n, true);
  return { values, vectors: transpose(rows, n, n) };
}

/** Eigenvalues only (ascending) of the symmetric a (lower triangle read). */
export function symEigvals(a: Float64Array, n: number): Float64Array {
  checkSquare('symEigvals', a, n);
  return eigRows(a, n, false).values;
}

/** The (cols x rows) transpose of a row-major (rows x cols) matrix. */
export function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    for (let c0 = 0; c0 < cols; c0 += T) {
      const r1 = Math.min(rows, r0 + T), c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
  }
  return out;
}

/** (a + a^T) / 2 in place (n x n). */
export function symmetrise(a: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const m = 0.5 * (a[i * n + j] + a[j * n + i]);
      a[i * n + j] = m;
      a[j * n + i] = m;
    }
  }
  return a;
}

export interface MatmulOptions { transA?: boolean; transB?: boolean; alpha?: number; out?: Float64Array }

/** C (M x N) = alpha * op(A) op(B) in float64; op(A) is A (M x K) or, with transA, A^T of A stored K x M;
 *  op(B) is B (K x N) or, with transB, B^T of B stored N x K. Writes into opts.out when given. */
export function matmulF64(a: Float64Array, b: Float64Array, M: number, N: number, K: number,
                          opts: MatmulOptions = {}): Float64Array {
  for (const [k, v] of Object.entries({ M, N, K })) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`dd2: matmulF64: ${k} must be an integer >= 0, got ${v}`);
  }
  if (!(a instanceof Float64Array) || a.length !== M * K) throw new RangeError(`dd2: matmulF64: A must be a Float64Array of ${M * K} elements (${opts.transA ? `${K} x ${M}` : `${M} x ${K}`}), got ${a?.length}`);
  if (!(b instanceof Float64Array) || b.length !== K * N) throw new RangeError(`dd2: matmulF64: B must be a Float64Array of ${K * N} elements (${opts.transB ? `${N} x ${K}` : `${K} x ${N}`}), got ${b?.length}`);
  const c = opts.out ?? new Float64Array(M * N);
  if (c.length !== M * N) throw new RangeError(`dd2: matmulF64: out must have ${M * N} elements, got ${c.length}`);
  native.gemm_f64(c, a, b, M, N, K, !!opts.transA, !!opts.transB, opts.alpha ?? 1, 0);
  return c;
}

/** Rows of `rows` (the addon's eigenvector layout) each scaled by f(values[k]). */
function scaleRows(rows: Float64Array, values: Float64Array, n: number, f: (x: number) => number): Float64Array {
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = f(values[k]);
    for (let j = 0; j < n; j++) out[k * n + j] = rows[k * n + j] * s;
  }
  return out;
}

/** Square root of a symmetric positive semi-definite matrix: V diag(sqrt(max(λ, 0))) V^T (n x n), exactly
 *  symmetric. Negative eigenvalues (rounding noise of a PSD matrix) are clipped to 0. */
export function sqrtmPSD(a: Float64Array, n: number): Float64Array {
  checkSquare('sqrtmPSD', a, n);
  if (n === 0) return new Float64Array(0);
  const { values, rows } = eigRows(a, n, true);
  // With W = V^T (eigenvectors in rows) and U = diag(λ^{1/4}) W: V diag(√λ) V^T = U^T U.
  const u = scaleRows(rows, values, n, (x) => Math.sqrt(Math.sqrt(Math.max(x, 0))));
  return symmetrise(matmulF64(u, u, n, n, n, { transA: true }), n);
}

/** tr((S1 S2)^{1/2}) for symmetric PSD S1, S2 (n x n): Σ sqrt(max(λ_i(M), 0)) with M = R S2 R and
 *  R = S1^{1/2}. Computed without forming R: with S1 = W^T Λ W and G = Λ^{1/2} W, M' = G S2 G^T equals
 *  W R S2 R W^T, an orthogonal similarity of M, so it has M's eigenvalues (and those of S1 S2). */
export function traceSqrtProduct(s1: Float64Array, s2: Float64Array, n: number): number {
  checkSquare('traceSqrtProduct (S1)', s1, n);
  checkSquare('traceSqrtProduct (S2)', s2, n);
  if (n === 0) return 0;
  const { values, rows } = eigRows(s1, n, true);
  const g = scaleRows(rows, values, n, (x) => Math.sqrt(Math.max(x, 0)));
  const gs = matmulF64(g, s2, n, n, n);
  const m = symmetrise(matmulF64(gs, g, n, n, n, { transB: true }), n);
  const lam = eigRows(m, n, false).values;
  let tr = 0;
  for (let i = 0; i < n; i++) tr += Math.sqrt(Math.max(lam[i], 0));
  return tr;
}
