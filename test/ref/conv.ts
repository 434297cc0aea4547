// Float64 references for convolution (direct seven-loop sum, zero padding) and nearest upsampling.
// Dimension letters: N images, Cin/Cout channels, H x W input, KH x KW kernel, OH x OW output.

export interface ConvDims { N: number; Cin: number; H: number; W: number; Cout: number; KH: number; KW: number }

export function convOutSize(n: number, k: number, stride: number, pad: number): number {
  return Math.floor((n + 2 * pad - k) / stride) + 1;
}

/** Padding P (both axes) or [PH, PW]. */
export type ConvPad = number | readonly [number, number];
const padPair = (pad: ConvPad): [number, number] => (typeof pad === 'number' ? [pad, pad] : [pad[0], pad[1]]);

/** y (N, Cout, OH, OW) = sum over (ci, kh, kw) of x[n, ci, oh*s - ph + kh, ow*s - pw + kw] w[co, ci, kh, kw] + b[co] */
export function conv2dRef(x: Float64Array, w: Float64Array, b: Float64Array | null, d: ConvDims, stride: number,
                          pad: ConvPad): Float64Array {
  const { N, Cin, H, W, Cout, KH, KW } = d;
  const [ph, pw] = padPair(pad);
  const OH = convOutSize(H, KH, stride, ph), OW = convOutSize(W, KW, stride, pw);
  const y = new Float64Array(N * Cout * OH * OW);
  for (let n = 0; n < N; n++) {
    for (let co = 0; co < Cout; co++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let s = b ? b[co] : 0;
          for (let ci = 0; ci < Cin; ci++) {
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * stride - ph + kh;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * stride - pw + kw;
                if (iw < 0 || iw >= W) continue;
                s += x[((n * Cin + ci) * H + ih) * W + iw] * w[((co * Cin + ci) * KH + kh) * KW + kw];
              }
            }
          }
          y[((n * Cout + co) * OH + oh) * OW + ow] = s;
        }
      }
    }
  }
  return y;
}

/** Per-output bound sum |x w| + |b| (the scale of float32 rounding in the dot product). */
export function conv2dAbsRef(x: Float64Array, w: Float64Array, b: Float64Array | null, d: ConvDims, stride: number,
                             pad: ConvPad): Float64Array {
  return conv2dRef(x.map(Math.abs), w.map(Math.abs), b ? b.map(Math.abs) : null, d, stride, pad);
}

/** y (NC, H*f, W*f) with y[c, h, w] = x[c, floor(h / f), floor(w / f)] */
export function upsampleNearestRef(x: Float64Array, NC: number, H: number, W: number, f: number): Float64Array {
  const y = new Float64Array(NC * H * f * W * f);
  for (let c = 0; c < NC; c++) {
    for (let h = 0; h < H * f; h++) {
      for (let w = 0; w < W * f; w++) y[(c * H * f + h) * W * f + w] = x[(c * H + Math.floor(h / f)) * W + Math.floor(w / f)];
    }
  }
  return y;
}
