// Float64 reference GEMM for kernel tests, with the native gemm's argument order and layout
// (row-major, see native/include/dd2/cpu/gemm.h): C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b].
// gemmScale gives the per-element magnitude bound sum_k |op(A)_ik| |op(B)_kj| used as the error scale.
type Arr = ArrayLike<number>;

export interface GemmShape {
  batch: number; M: number; N: number; K: number; transA: boolean; transB: boolean;
  strideA: number; strideB: number; strideC: number;
}

/** op(A)[b](i, k) and op(B)[b](k, j) accessors over flat arrays. */
function opA(a: Arr, s: GemmShape, b: number, i: number, k: number): number {
  return s.transA ? a[b * s.strideA + k * s.M + i] : a[b * s.strideA + i * s.K + k];
}
function opB(bm: Arr, s: GemmShape, b: number, k: number, j: number): number {
  return s.transB ? bm[b * s.strideB + j * s.K + k] : bm[b * s.strideB + k * s.N + j];
}

/** Reference in float64; returns a new Float64Array with c's layout (elements outside the batch
 *  matrices are copied from c). beta == 0 ignores the old contents of C (NaN included). */
export function refGemm(c: Arr, a: Arr, b: Arr, batch: number, M: number, N: number, K: number,
                        transA: boolean, transB: boolean, strideA: number, strideB: number, strideC: number,
                        alpha: number, beta: number): Float64Array {
  const s: GemmShape = { batch, M, N, K, transA, transB, strideA, strideB, strideC };
  const out = Float64Array.from(c);
  const row = new Float64Array(N);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const av = opA(a, s, bi, i, k);
        if (av === 0) continue;
        for (let j = 0; j < N; j++) row[j] += av * opB(b, s, bi, k, j);
      }
      for (let j = 0; j < N; j++) {
        const ci = bi * strideC + i * N + j;
        out[ci] = alpha * row[j] + (beta === 0 ? 0 : beta * c[ci]);
      }
    }
  }
  return out;
}

/** Per-element error scale of the same layout: |alpha| * sum_k |op(A)_ik| |op(B)_kj| + |beta * C_ij|
 *  (the bound a rounding analysis of the dot product is proportional to). */
export function gemmScale(c: Arr, a: Arr, b: Arr, batch: number, M: number, N: number, K: number,
                          transA: boolean, transB: boolean, strideA: number, strideB: number, strideC: number,
                          alpha: number, beta: number): Float64Array {
  const s: GemmShape = { batch, M, N, K, transA, transB, strideA, strideB, strideC };
  const out = new Float64Array(c.length);
  const row = new Float64Array(N);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const av = Math.abs(opA(a, s, bi, i, k));
        for (let j = 0; j < N; j++) row[j] += av * Math.abs(opB(b, s, bi, k, j));
      }
      for (let j = 0; j < N; j++) {
        const ci = bi * strideC + i * N + j;
        out[ci] = Math.abs(alpha) * row[j] + (beta === 0 ? 0 : Math.abs(beta * c[ci]));
      }
    }
  }
  return out;
}
