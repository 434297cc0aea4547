// Float64 reference for batched matmul with transposes and batch broadcasting (row-major arrays).
import { broadcastShapes, contiguousStrides, sizeOf } from '../../lib/tensor/shape.js';

export function matmulRef(a: Float64Array, as: number[], b: Float64Array, bs: number[], transA = false,
                          transB = false): { out: Float64Array; shape: number[] } {
  const ra = as.length, rb = bs.length;
  const M = transA ? as[ra - 1] : as[ra - 2], K = transA ? as[ra - 2] : as[ra - 1];
  const N = transB ? bs[rb - 2] : bs[rb - 1];
  const ab = as.slice(0, -2), bb = bs.slice(0, -2);
  const ob = broadcastShapes(ab, bb, 'ref');
  const nb = sizeOf(ob);
  const out = new Float64Array(nb * M * N);
  const obs = contiguousStrides(ob);
  const batchOff = (shape: number[], idx: number[]): number => {
    const st = contiguousStrides(shape);
    let off = 0;
    for (let d = 0; d < shape.length; d++) {
      const od = d + ob.length - shape.length;
      if (shape[d] !== 1) off += idx[od] * st[d];
    }
    return off;
  };
  for (let i = 0; i < nb; i++) {
    const idx = obs.map((s, d) => Math.floor(i / s) % ob[d]);
    const ao = batchOff(ab, idx) * M * K, bo = batchOff(bb, idx) * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[ao + k * M + m] : a[ao + m * K + k];
          const bv = transB ? b[bo + n * K + k] : b[bo + k * N + n];
          s += av * bv;
        }
        out[i * M * N + m * N + n] = s;
      }
    }
  }
  return { out, shape: [...ob, M, N] };
}
