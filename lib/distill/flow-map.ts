// The per-token AR flow map (METHOD §9.1, DD1's noise → token map): for one position with next-token
// probabilities p over the codebook, the rectified-flow ODE dx/dt = v(x, t) = (x − D(x, t; p))/t from
// x(1) = ε to t = 0 carries N(0, I) onto Σ_j p_j δ(x − c_j). Each Euler step from t to s < t is
//   x_s = (s/t)·x_t + (1 − s/t)·D(x_t, t)
// (the same update written in denoiser form), on a uniform grid of `steps` intervals; the last step lands on
// D itself, which is snapped to the nearest code. Deterministic in ε: sequences drawn this way, position by
// position in AR order, are teacher samples paired with the noise that produced them (the (noise, data) pairs
// of the generator's regression warm start, lib/distill/regress.ts). Solver error is measured in
// test/distill/flow-map.test.ts (the joint of the tabular teacher within the sampling noise at 32 steps).
// Letters: B tokens (one position of B sequences), C code dim, V codebook size.
import type { Tensor } from '../tensor/tensor.js';
import { full } from '../tensor/create.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { add, mulScalar } from '../tensor/ops/elementwise.js';
import { condDenoise, type MixtureProbs } from '../tensor/ops/cond-score.js';
import { copy } from '../tensor/ops/shape.js';
import { nearestCodes } from './teacher.js';

/** Euler intervals of the flow map unless a caller says otherwise. */
export const DEFAULT_FLOW_STEPS = 32;

/**
 * The flow map of B tokens: eps (B, C) noise, p their probabilities (B rows, dense or top-k), codebook (V, C)
 * -> the indices (B) of the codes the ODE ends on. Runs on eps's device; no graph is recorded.
 */
export function flowToCodes(eps: Tensor, p: MixtureProbs, codebook: Tensor, steps = DEFAULT_FLOW_STEPS): Int32Array {
  if (!(Number.isInteger(steps) && steps >= 1)) throw new RangeError(`dd2: flow map: steps must be an integer >= 1, got ${steps}`);
  if (eps.rank !== 2 || eps.shape[1] !== codebook.shape[1]) {
    throw new RangeError(`dd2: flow map: eps ${eps.describe()} must be (B, ${codebook.shape[1]})`);
  }
  const B = eps.shape[0], device = eps.device;
  return noGrad(() => {
    let x = keep(tidy(() => copy(eps)));                                        // a copy the loop may dispose
    try {
      for (let k = 0; k < steps; k++) {
        const t = 1 - k / steps, s = 1 - (k + 1) / steps, r = s / t;
        const next = keep(tidy(() => {
          const D = condDenoise(x, full([B], t, { device }), codebook, p);
          return r === 0 ? D : add(mulScalar(x, r), mulScalar(D, 1 - r));
        }));
        x.dispose();
        x = next;
      }
      return nearestCodes(x, codebook);
    } finally {
      x.dispose();
    }
  });
}
