// Float64 reference for masked scaled-dot-product attention (plain loops, row-major arrays).
//   q (B, H, Tq, D), k/v (B, H, Tk, D) -> out (B, H, Tq, D); BH = B·H.
// Mask: with levels, key j is visible to query i iff levelK[j] <= levelQ[i]; else with causal, iff
// j <= i + Tk - Tq; else everything is visible. A query that sees no key gets a zero output row.

export interface MaskSpec {
  causal?: boolean;
  levelQ?: ArrayLike<number>;
  levelK?: ArrayLike<number>;
}

export function visibleRef(spec: MaskSpec, Tq: number, Tk: number): (i: number, j: number) => boolean {
  const { levelQ, levelK } = spec;
  if (levelQ && levelK) return (i, j) => levelK[j] <= levelQ[i];
  if (spec.causal) return (i, j) => j <= i + Tk - Tq;
  return () => true;
}

export function attentionRef(q: Float64Array, k: Float64Array, v: Float64Array, BH: number, Tq: number, Tk: number,
                             D: number, scale: number, spec: MaskSpec): Float64Array {
  const vis = visibleRef(spec, Tq, Tk);
  const out = new Float64Array(BH * Tq * D);
  const s = new Float64Array(Tk);
  for (let b = 0; b < BH; b++) {
    for (let i = 0; i < Tq; i++) {
      let m = -Infinity;
      for (let j = 0; j < Tk; j++) {
        if (!vis(i, j)) { s[j] = -Infinity; continue; }
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(b * Tq + i) * D + d] * k[(b * Tk + j) * D + d];
        s[j] = scale * dot;
        m = Math.max(m, s[j]);
      }
      if (m === -Infinity) continue;   // fully masked row: output stays 0
      let l = 0;
      for (let j = 0; j < Tk; j++) {
        s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - m);
        l += s[j];
      }
      for (let j = 0; j < Tk; j++) {
        if (s[j] === 0) continue;
        const p = s[j] / l;
        for (let d = 0; d < D; d++) out[(b * Tq + i) * D + d] += p * v[(b * Tk + j) * D + d];
      }
    }
  }
  return out;
}

/** VAR-style levels: scale index r repeated side_r² times (e.g. sides 1,2,3 -> 14 tokens). */
export function varLevels(sides: number[]): number[] {
  const out: number[] = [];
  sides.forEach((side, r) => { for (let n = 0; n < side * side; n++) out.push(r); });
  return out;
}
