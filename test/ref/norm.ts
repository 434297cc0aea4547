// Float64 references for layer norm, RMS norm and group norm (two-pass mean and variance in float64).
// x is row-major; w and b may be null (no affine).

type Vec = ArrayLike<number> | null;

/** Normalises blocks of `m` contiguous values; wOf(i) / bOf(i) give the affine terms of element i. */
function normBlocks(x: ArrayLike<number>, m: number, eps: number, center: boolean, wOf: (i: number) => number,
                    bOf: (i: number) => number): Float64Array {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += m) {
    let mean = 0;
    if (center) {
      for (let i = 0; i < m; i++) mean += x[o + i];
      mean /= m;
    }
    let v = 0;
    for (let i = 0; i < m; i++) v += (x[o + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / m + eps);
    for (let i = 0; i < m; i++) y[o + i] = (x[o + i] - mean) * rstd * wOf(o + i) + bOf(o + i);
  }
  return y;
}

export function layerNormRef(x: ArrayLike<number>, cols: number, w: Vec, b: Vec, eps: number): Float64Array {
  return normBlocks(x, cols, eps, true, (i) => (w ? w[i % cols] : 1), (i) => (b ? b[i % cols] : 0));
}

export function rmsNormRef(x: ArrayLike<number>, cols: number, w: Vec, eps: number): Float64Array {
  return normBlocks(x, cols, eps, false, (i) => (w ? w[i % cols] : 1), () => 0);
}

/** x (N, C, HW) in groups of C/G channels; w, b per channel. */
export function groupNormRef(x: ArrayLike<number>, C: number, HW: number, G: number, w: Vec, b: Vec,
                             eps: number): Float64Array {
  const ch = (i: number): number => Math.floor(i / HW) % C;
  return normBlocks(x, (C / G) * HW, eps, true, (i) => (w ? w[ch(i)] : 1), (i) => (b ? b[ch(i)] : 0));
}
