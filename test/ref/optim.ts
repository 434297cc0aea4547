// Float64 references for the optimiser kernels: AdamW (PyTorch semantics, decoupled weight decay),
// the parameter EMA, and the global gradient norm with clipping. State arrays are updated in place.

export interface AdamWHyper { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** Rounding-error scales for the float32 kernels, accumulated per element alongside the reference:
 *  every rounded operation of a step errs by at most ~u times the magnitude of its result, and an
 *  earlier error is carried forward with the factor that multiplies the state (1 for p, beta for the
 *  averages). So scale_t = factor * scale_(t-1) + (sum of magnitudes of the step's terms), and
 *  |float32 - float64| / scale stays a small multiple of u however values cancel. */
export interface AdamWScale { p: Float64Array; m: Float64Array; v: Float64Array }

export function adamwScale(n: number): AdamWScale {
  return { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
}

/** Magnitudes of the rounded terms of a lerp a -> x with weight w, computed as a + w(x - a), or
 *  x - (1 - w)(x - a) for w >= 1/2: the result and the scaled difference. */
export function lerpTerms(aNew: number, aOld: number, x: number, w: number): number {
  return Math.abs(aNew) + Math.min(w, 1 - w) * Math.abs(x - aOld);
}

/** One AdamW step at step number t (1-based) on float64 state. */
export function adamwRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, h: AdamWHyper,
                         t: number, scale?: AdamWScale): void {
  const bc1 = 1 - h.beta1 ** t, bc2 = 1 - h.beta2 ** t;
  for (let i = 0; i < p.length; i++) {
    const p0 = p[i], m0 = m[i], v0 = v[i], g2 = g[i] * g[i];
    const decay = h.lr * h.weightDecay * p[i];
    p[i] -= decay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g2;
    const upd = (h.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + h.eps);
    p[i] -= upd;
    if (scale) {
      scale.m[i] = h.beta1 * scale.m[i] + lerpTerms(m[i], m0, g[i], 1 - h.beta1);
      scale.v[i] = h.beta2 * scale.v[i] + lerpTerms(v[i], v0, g2, 1 - h.beta2);
      // upd = (lr/bc1) m / (sqrt(v/bc2) + eps) is accurate to a few u given m and v; their own errors
      // enter as (lr/bc1) err(m) / denominator and |upd| err(v) / (2v)
      const den = Math.sqrt(v[i] / bc2) + h.eps;
      const updScale = Math.abs(upd) + (h.lr / bc1) * scale.m[i] / den +
        (v[i] > 0 ? Math.abs(upd) * scale.v[i] / (2 * v[i]) : 0);
      scale.p[i] += Math.abs(p0) + Math.abs(p[i]) + updScale;
    }
  }
}

/** ema = decay * ema + (1 - decay) * p; scale (start it at zeros) accumulates the rounding scale. */
export function emaRef(ema: Float64Array, p: ArrayLike<number>, decay: number, scale?: Float64Array): void {
  for (let i = 0; i < ema.length; i++) {
    const e0 = ema[i];
    ema[i] = decay * ema[i] + (1 - decay) * p[i];
    if (scale) scale[i] = decay * scale[i] + lerpTerms(ema[i], e0, p[i], 1 - decay);
  }
}

/** sqrt of the sum of squares over all arrays */
export function globalNormRef(gs: ArrayLike<number>[]): number {
  let s = 0;
  for (const g of gs) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/** gradients after clipping to maxNorm (PyTorch: scale by maxNorm / (norm + 1e-6) when norm > maxNorm) */
export function clipRef(gs: ArrayLike<number>[], maxNorm: number): Float64Array[] {
  const n = globalNormRef(gs);
  const s = n > maxNorm ? maxNorm / (n + 1e-6) : 1;
  return gs.map((g) => Float64Array.from(g, (x) => x * s));
}

/** cosine schedule with linear warm-up, written out independently of lib/nn/optim.ts */
export function cosineRef(step: number, warmup: number, total: number, base: number, min: number): number {
  if (step < warmup) return base * (step + 1) / warmup;
  if (step >= total) return min;
  const frac = (step - warmup) / (total - warmup);
  return min + (base - min) * (1 + Math.cos(Math.PI * frac)) / 2;
}
