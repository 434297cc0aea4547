// Float64 references for 2-D max / average pooling and bilinear resizing (NCHW as NC planes), written
// from the definitions (PyTorch's max_pool2d / avg_pool2d with ceil_mode = False, F.interpolate 'bilinear'
// with align_corners = False, TF1 resize_bilinear with half_pixel_centers = False).
// Letters: NC planes of H x W, KH x KW window, SH / SW strides, PH / PW padding, OH x OW output.

export interface PoolDims { NC: number; H: number; W: number; KH: number; KW: number; SH: number; SW: number; PH: number; PW: number }

export function poolOut(d: PoolDims): [number, number] {
  return [Math.floor((d.H + 2 * d.PH - d.KH) / d.SH) + 1, Math.floor((d.W + 2 * d.PW - d.KW) / d.SW) + 1];
}

/** Every window's input cells (h, w) inside the image, in row-major order, with the padded window size. */
function windows(d: PoolDims, fn: (p: number, oh: number, ow: number, cells: [number, number][], padded: number) => void): void {
  const [OH, OW] = poolOut(d);
  for (let p = 0; p < d.NC; p++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const cells: [number, number][] = [];
        const h0 = oh * d.SH - d.PH, w0 = ow * d.SW - d.PW;
        // window cells that lie in the padded image [-PH, H + PH) x [-PW, W + PW)
        const padded = (Math.min(h0 + d.KH, d.H + d.PH) - h0) * (Math.min(w0 + d.KW, d.W + d.PW) - w0);
        for (let h = h0; h < h0 + d.KH; h++) {
          for (let w = w0; w < w0 + d.KW; w++) if (h >= 0 && h < d.H && w >= 0 && w < d.W) cells.push([h, w]);
        }
        fn(p, oh, ow, cells, padded);
      }
    }
  }
}

/** y (NC, OH, OW) = max over the window's input cells (padding never wins). */
export function maxPool2dRef(x: Float64Array, d: PoolDims): Float64Array {
  const [OH, OW] = poolOut(d);
  const y = new Float64Array(d.NC * OH * OW);
  windows(d, (p, oh, ow, cells) => {
    let m = -Infinity;
    for (const [h, w] of cells) m = Math.max(m, x[(p * d.H + h) * d.W + w]);
    y[(p * OH + oh) * OW + ow] = m;
  });
  return y;
}

/** y = sum over the window's input cells / (KH·KW if countIncludePad else the number of input cells). */
export function avgPool2dRef(x: Float64Array, d: PoolDims, countIncludePad: boolean): Float64Array {
  const [OH, OW] = poolOut(d);
  const y = new Float64Array(d.NC * OH * OW);
  windows(d, (p, oh, ow, cells, padded) => {
    let s = 0;
    for (const [h, w] of cells) s += x[(p * d.H + h) * d.W + w];
    y[(p * OH + oh) * OW + ow] = s / (countIncludePad ? padded : cells.length);
  });
  return y;
}

/** Taps [i0, i1, w0, w1] of output o along an axis of input size n and output size m. */
export function bilinearTaps(o: number, n: number, m: number, mode: 'pytorch' | 'tf1'): [number, number, number, number] {
  const scale = n / m;
  const src = Math.max(0, mode === 'pytorch' ? (o + 0.5) * scale - 0.5 : o * scale);
  const i0 = Math.min(Math.floor(src), n - 1), i1 = Math.min(i0 + 1, n - 1);
  const l = src - i0;
  return [i0, i1, 1 - l, l];
}

/** y (NC, OH, OW): separable linear interpolation of each plane at the taps above. */
export function resizeBilinearRef(x: Float64Array, NC: number, H: number, W: number, OH: number, OW: number,
                                  mode: 'pytorch' | 'tf1'): Float64Array {
  const y = new Float64Array(NC * OH * OW);
  for (let p = 0; p < NC; p++) {
    for (let oh = 0; oh < OH; oh++) {
      const [h0, h1, a0, a1] = bilinearTaps(oh, H, OH, mode);
      for (let ow = 0; ow < OW; ow++) {
        const [w0, w1, b0, b1] = bilinearTaps(ow, W, OW, mode);
        const at = (h: number, w: number): number => x[(p * H + h) * W + w];
        y[(p * OH + oh) * OW + ow] = a0 * (b0 * at(h0, w0) + b1 * at(h0, w1)) + a1 * (b0 * at(h1, w0) + b1 * at(h1, w1));
      }
    }
  }
  return y;
}
