// Float64 references for the optimiser kernels: AdamW (PyTorch semantics, decoupled weight decay),
// the parameter EMA, and the global gradient norm with clipping. State arrays are updated in place.

export interface AdamWHyper { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** Magnitude bounds for rounding-error tolerances: p accumulates |p| plus every |change| made to it;
 *  m is the same average taken over |g| (it bounds |m| and the terms that cancel inside it). */
export interface AdamWScale { p: Float64Array; m: Float64Array }

export function adamwScale(p0: ArrayLike<number>): AdamWScale {
  return { p: Float64Array.from(p0, Math.abs), m: new Float64Array(p0.length) };
}

/** One AdamW step at step number t (1-based) on float64 state. */
export function adamwRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, h: AdamWHyper,
                         t: number, scale?: AdamWScale): void {
  const bc1 = 1 - h.beta1 ** t, bc2 = 1 - h.beta2 ** t;
  for (let i = 0; i < p.length; i++) {
    const decay = h.lr * h.weightDecay * p[i];
    p[i] -= decay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    const upd = (h.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + h.eps);
    p[i] -= upd;
    if (scale) {
      scale.p[i] += Math.abs(decay) + Math.abs(upd);
      scale.m[i] = h.beta1 * scale.m[i] + (1 - h.beta1) * Math.abs(g[i]);
    }
  }
}

/** ema = decay * ema + (1 - decay) * p; scale (if given, start it at |ema|) tracks the same average
 *  of magnitudes, a bound for the terms that cancel. */
export function emaRef(ema: Float64Array, p: ArrayLike<number>, decay: number, scale?: Float64Array): void {
  for (let i = 0; i < ema.length; i++) {
    ema[i] = decay * ema[i] + (1 - decay) * p[i];
    if (scale) scale[i] = decay * scale[i] + (1 - decay) * Math.abs(p[i]);
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
