// Image resizing for uint8 HWC images (H rows, W columns, C channels), separable per axis:
// - shrinking an axis averages over each output pixel's footprint, counting partly covered input
//   pixels by their overlap (an area average, like PIL's BOX filter or OpenCV's INTER_AREA);
// - enlarging an axis interpolates linearly between pixel centres (half-pixel convention, edges
//   clamped: PyTorch's bilinear with align_corners=false).
// Sums run in float64; results are rounded to nearest and clamped to 0..255.

/** For each output position, the input indices it reads and their weights (summing to 1). */
export interface AxisWeights { index: Int32Array[]; weight: Float64Array[] }

export function axisWeights(inSize: number, outSize: number): AxisWeights {
  if (!(Number.isInteger(inSize) && inSize > 0 && Number.isInteger(outSize) && outSize > 0)) {
    throw new RangeError(`dd2: resize: sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const index: Int32Array[] = [], weight: Float64Array[] = [];
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) {
      index.push(Int32Array.of(o)); weight.push(Float64Array.of(1));
    } else if (outSize < inSize) {
      const lo = o * scale, hi = (o + 1) * scale;
      const first = Math.floor(lo), last = Math.min(Math.ceil(hi), inSize) - 1;
      const idx: number[] = [], w: number[] = [];
      for (let i = first; i <= last; i++) {
        const overlap = Math.min(i + 1, hi) - Math.max(i, lo);
        if (overlap > 1e-12) { idx.push(i); w.push(overlap / scale); }
      }
      index.push(Int32Array.from(idx)); weight.push(Float64Array.from(w));
    } else {
      const x = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), inSize - 1);
      const i0 = Math.floor(x), f = x - i0, i1 = Math.min(i0 + 1, inSize - 1);
      index.push(Int32Array.of(i0, i1)); weight.push(Float64Array.of(1 - f, f));
    }
  }
  return { index, weight };
}

/** Resizes one HWC uint8 image to (outH, outW). */
export function resizeImage(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number): Uint8Array {
  if (src.length !== h * w * c) {
    throw new RangeError(`dd2: resize: ${src.length} bytes do not hold a ${h}x${w}x${c} image`);
  }
  if (h === outH && w === outW) return src.slice();
  const ax = axisWeights(w, outW), ay = axisWeights(h, outH);
  const tmp = new Float64Array(h * outW * c);           // rows resized along W
  for (let y = 0; y < h; y++) {
    for (let ox = 0; ox < outW; ox++) {
      const idx = ax.index[ox], wt = ax.weight[ox];
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let k = 0; k < idx.length; k++) s += wt[k] * src[(y * w + idx[k]) * c + ch];
        tmp[(y * outW + ox) * c + ch] = s;
      }
    }
  }
  const out = new Uint8Array(outH * outW * c);
  const rowLen = outW * c;
  for (let oy = 0; oy < outH; oy++) {
    const idx = ay.index[oy], wt = ay.weight[oy];
    for (let j = 0; j < rowLen; j++) {
      let s = 0;
      for (let k = 0; k < idx.length; k++) s += wt[k] * tmp[idx[k] * rowLen + j];
      out[oy * rowLen + j] = Math.min(255, Math.max(0, Math.round(s)));
    }
  }
  return out;
}

/** Resizes n NHWC images of (h, w) to (outH, outW). */
export function resizeImages(nhwc: Uint8Array, n: number, h: number, w: number, c: number,
                             outH: number, outW: number): Uint8Array {
  const inLen = h * w * c, outLen = outH * outW * c;
  if (nhwc.length !== n * inLen) throw new RangeError(`dd2: resize: ${nhwc.length} bytes do not hold ${n} ${h}x${w}x${c} images`);
  const out = new Uint8Array(n * outLen);
  for (let i = 0; i < n; i++) {
    out.set(resizeImage(nhwc.subarray(i * inLen, (i + 1) * inLen), h, w, c, outH, outW), i * outLen);
  }
  return out;
}

/** The largest centred square of an HWC image (a copy; offsets round down). */
export function centerCropSquare(src: Uint8Array, h: number, w: number, c: number): { data: Uint8Array; size: number } {
  const s = Math.min(h, w), y0 = Math.floor((h - s) / 2), x0 = Math.floor((w - s) / 2);
  if (s === h && s === w) return { data: src, size: s };
  const out = new Uint8Array(s * s * c);
  for (let y = 0; y < s; y++) out.set(src.subarray(((y0 + y) * w + x0) * c, ((y0 + y) * w + x0 + s) * c), y * s * c);
  return { data: out, size: s };
}

/** Converts n pixels between 1 and 3 channels: gray -> RGB replicates, RGB -> gray uses the ITU-R 601
 *  luma 0.299 R + 0.587 G + 0.114 B (PIL's "L" conversion), rounded. */
export function convertChannels(src: Uint8Array, pixels: number, from: number, to: number): Uint8Array {
  if (from === to) return src;
  const out = new Uint8Array(pixels * to);
  if (from === 1 && to === 3) {
    for (let p = 0; p < pixels; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = src[p];
  } else if (from === 3 && to === 1) {
    for (let p = 0; p < pixels; p++) {
      out[p] = Math.round(0.299 * src[3 * p] + 0.587 * src[3 * p + 1] + 0.114 * src[3 * p + 2]);
    }
  } else {
    throw new RangeError(`dd2: convertChannels: cannot convert ${from} to ${to} channels (only 1 and 3)`);
  }
  return out;
}
