// Float64 references for DD2's conditional denoiser (METHOD.md §2.3) and the CSD loss (§5.3), written
// directly from the definitions: the log mixture density log p_t(x) = log Σ_j p_j N(x; a c_j, t² I)
// (a = 1 − t) with its Gaussian normaliser, the posterior weights w_j ∝ p_j exp(−‖x − a c_j‖²/(2t²))
// (max-shifted), D = Σ_j w_j c_j, and the analytic VJP (a/t²)·Cov_w(c)·g. Entries with p = 0 are skipped.

/** One token's mixture in float64: entries (code index, probability). */
export interface RefProbs {
  /** dense (N, V) or null */
  dense: ArrayLike<number> | null;
  /** sparse (N, K) indices and values, or null */
  idx: ArrayLike<number> | null;
  val: ArrayLike<number> | null;
  V: number;
  K: number;
}

function entries(p: RefProbs, r: number): [number, number][] {
  const out: [number, number][] = [];
  if (p.dense) {
    for (let j = 0; j < p.V; j++) if (p.dense[r * p.V + j] > 0) out.push([j, p.dense[r * p.V + j]]);
  } else {
    for (let e = 0; e < p.K; e++) if (p.val![r * p.K + e] > 0) out.push([p.idx![r * p.K + e], p.val![r * p.K + e]]);
  }
  return out;
}

interface RowWeights { js: number[]; w: number[]; lse: number }

/** Normalised posterior weights of row r and lse = log Σ_j p_j exp(−‖x − a c_j‖²/(2t²)). */
function rowWeights(x: ArrayLike<number>, xo: number, t: number, code: ArrayLike<number>, C: number, p: RefProbs,
                    r: number): RowWeights {
  const a = 1 - t, ent = entries(p, r);
  const l = ent.map(([j, pj]) => {
    let d = 0;
    for (let c = 0; c < C; c++) {
      const diff = x[xo + c] - a * code[j * C + c];
      d += diff * diff;
    }
    return Math.log(pj) - d / (2 * t * t);
  });
  const m = Math.max(...l);
  if (!ent.length || m === -Infinity) return { js: [], w: [], lse: -Infinity };
  const e = l.map((v) => Math.exp(v - m));
  const s = e.reduce((u, v) => u + v, 0);
  return { js: ent.map((q) => q[0]), w: e.map((v) => v / s), lse: m + Math.log(s) };
}

/** D (N, C) and lse (N); rows without a positive probability give D = 0, lse = −inf. */
export function condDenoiseRef(x: ArrayLike<number>, t: ArrayLike<number>, code: ArrayLike<number>, p: RefProbs,
                               N: number, C: number): { D: Float64Array; lse: Float64Array } {
  const D = new Float64Array(N * C), lse = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    const rw = rowWeights(x, r * C, t[r], code, C, p, r);
    lse[r] = rw.lse;
    rw.js.forEach((j, e) => {
      for (let c = 0; c < C; c++) D[r * C + c] += rw.w[e] * code[j * C + c];
    });
  }
  return { D, lse };
}

/** log p_t(x) of one token (its row r of the probabilities), with the normaliser (2π t²)^(−C/2). */
export function logDensityRef(x: ArrayLike<number>, xo: number, t: number, code: ArrayLike<number>, C: number,
                              p: RefProbs, r: number): number {
  return rowWeights(x, xo, t, code, C, p, r).lse - C * Math.log(t * Math.sqrt(2 * Math.PI));
}

/** gx (N, C) = (a/t²)·Σ_j w_j ((c_j − D)·g)(c_j − D), the analytic VJP of D at x. */
export function condDenoiseVjpRef(g: ArrayLike<number>, x: ArrayLike<number>, t: ArrayLike<number>,
                                  code: ArrayLike<number>, p: RefProbs, N: number, C: number): Float64Array {
  const { D } = condDenoiseRef(x, t, code, p, N, C);
  const gx = new Float64Array(N * C);
  for (let r = 0; r < N; r++) {
    const rw = rowWeights(x, r * C, t[r], code, C, p, r);
    const f = (1 - t[r]) / (t[r] * t[r]);
    rw.js.forEach((j, e) => {
      let proj = 0;
      for (let c = 0; c < C; c++) proj += (code[j * C + c] - D[r * C + c]) * g[r * C + c];
      for (let c = 0; c < C; c++) gx[r * C + c] += f * rw.w[e] * proj * (code[j * C + c] - D[r * C + c]);
    });
  }
  return gx;
}

/** SiD / CSD per-token loss u·w/λ and the detached gradient scale·(−u/λ), with Dphi = D(xt) in float64. */
export function csdRef(x: ArrayLike<number>, xt: ArrayLike<number>, t: ArrayLike<number>, dpsi: ArrayLike<number>,
                       code: ArrayLike<number>, p: RefProbs, N: number, C: number, alpha: number, scale: number,
                       lambdaMin: number): { loss: Float64Array; dphi: Float64Array; gxDetached: Float64Array } {
  const dphi = condDenoiseRef(xt, t, code, p, N, C).D;
  const loss = new Float64Array(N), gxDetached = new Float64Array(N * C);
  for (let r = 0; r < N; r++) {
    let dist = 0;
    for (let c = 0; c < C; c++) dist += Math.abs(x[r * C + c] - dphi[r * C + c]);
    const lambda = Math.max(dist / C, lambdaMin);
    let lw = 0;
    for (let c = 0; c < C; c++) {
      const i = r * C + c, u = dphi[i] - dpsi[i], w = (dphi[i] - x[i]) - alpha * u;
      lw += u * w;
      gxDetached[i] = -scale * u / lambda;
    }
    loss[r] = lw / lambda;
  }
  return { loss, dphi, gxDetached };
}
