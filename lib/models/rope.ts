// 2D rotary position embedding over an h×w token grid, following LlamaGen autoregressive/models/gpt.py
// (precompute_freqs_cis_2d, apply_rotary_emb). A head of D dims is D/2 interleaved pairs (x[2i], x[2i+1]);
// pairs i < D/4 rotate by row·f_i and pairs i >= D/4 by col·f_(i-D/4), with f_j = base^(-2j/(D/2)).
// The `prefix` class positions come first; LlamaGen gives them (cos, sin) = (0, 0), which zeroes q and k
// there ('zero'); 'identity' uses (1, 0) instead. Letters: T positions (prefix + h·w in raster order),
// D head dim, B batch, H heads.
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { keep } from '../tensor/engine.js';
import { add, mul } from '../tensor/ops/elementwise.js';
import { slice } from '../tensor/ops/shape.js';
import { matmul } from '../tensor/ops/matmul.js';
import { fmtShape } from '../tensor/shape.js';
import type { Device } from '../tensor/dtype.js';

export type RopePrefixMode = 'zero' | 'identity';

export interface RopeOptions { base?: number; prefix?: number; prefixMode?: RopePrefixMode }

/** Angle tables cos/sin, each (T, D/2) row-major, T = prefix + gridH·gridW, in float64. */
export function ropeAngles(gridH: number, gridW: number, headDim: number, opts: RopeOptions = {}):
  { cos: Float64Array; sin: Float64Array; T: number } {
  const base = opts.base ?? 10000, prefix = opts.prefix ?? 1, mode = opts.prefixMode ?? 'zero';
  if (!Number.isInteger(headDim) || headDim < 4 || headDim % 4 !== 0) {
    throw new RangeError(`dd2: rope2d: head dim must be a positive multiple of 4, got ${headDim}`);
  }
  if (!(gridH >= 1 && gridW >= 1 && prefix >= 0)) {
    throw new RangeError(`dd2: rope2d: bad grid ${gridH}x${gridW} or prefix ${prefix}`);
  }
  const half = headDim / 2, quarter = headDim / 4;
  const T = prefix + gridH * gridW;
  const cos = new Float64Array(T * half), sin = new Float64Array(T * half);
  if (mode === 'identity') for (let t = 0; t < prefix; t++) cos.fill(1, t * half, (t + 1) * half);
  for (let r = 0; r < gridH; r++) {
    for (let c = 0; c < gridW; c++) {
      const row = (prefix + r * gridW + c) * half;
      for (let j = 0; j < quarter; j++) {
        const f = Math.pow(base, -(2 * j) / half);
        cos[row + j] = Math.cos(r * f); sin[row + j] = Math.sin(r * f);
        cos[row + quarter + j] = Math.cos(c * f); sin[row + quarter + j] = Math.sin(c * f);
      }
    }
  }
  return { cos, sin, T };
}

/**
 * Device tables for out = x ⊙ C + (x P) ⊙ S, where the permutation matrix P (D, D) swaps the two members
 * of each pair: C (T, D) = (cos, cos) per pair and S (T, D) = (-sin, +sin), so out[2i] = x[2i] cos -
 * x[2i+1] sin and out[2i+1] = x[2i+1] cos + x[2i] sin (the complex product of apply_rotary_emb). The swap
 * is a small GEMM because a strided pair swap (copy_strided with unit inner runs) was the slowest op of a
 * training step. Kept; dispose() frees.
 */
export class Rope2D {
  readonly C: Tensor;
  readonly S: Tensor;
  readonly P: Tensor;
  readonly T: number;

  constructor(readonly gridH: number, readonly gridW: number, readonly headDim: number, opts: RopeOptions = {},
              device?: Device) {
    const { cos, sin, T } = ropeAngles(gridH, gridW, headDim, opts);
    const half = headDim / 2;
    const C = new Float32Array(T * headDim), S = new Float32Array(T * headDim);
    for (let k = 0; k < T * half; k++) {
      C[2 * k] = C[2 * k + 1] = cos[k];
      S[2 * k] = -sin[k];
      S[2 * k + 1] = sin[k];
    }
    this.T = T;
    this.C = keep(tensor(C, [T, headDim], { device }));
    this.S = keep(tensor(S, [T, headDim], { device }));
    const P = new Float32Array(headDim * headDim);
    for (let i = 0; i < headDim; i++) P[i * headDim + (i ^ 1)] = 1;
    this.P = keep(tensor(P, [headDim, headDim], { device }));
  }

  /** Rotates x (..., T', D) whose T' positions are start .. start+T'-1 of the table. */
  apply(x: Tensor, start = 0): Tensor {
    const D = this.headDim, n = x.shape[x.rank - 2];
    if (x.rank < 2 || x.shape[x.rank - 1] !== D || start < 0 || start + n > this.T) {
      throw new RangeError(`dd2: rope2d: input ${fmtShape(x.shape)} at positions ${start}.. does not fit the ` +
        `table of ${this.T} positions and head dim ${D}`);
    }
    const c = n === this.T ? this.C : slice(this.C, 0, start, start + n);
    const s = n === this.T ? this.S : slice(this.S, 0, start, start + n);
    return add(mul(x, c), mul(matmul(x, this.P), s));
  }

  dispose(): void {
    this.C.dispose();
    this.S.dispose();
    this.P.dispose();
  }
}
