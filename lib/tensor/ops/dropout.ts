// Dropout: multiplies by a seeded mask (kept entries scaled by 1/(1-p)); identity when not training
// or p = 0. The mask is drawn from a Generator, so a run replays exactly from its seed.
import { Tensor } from '../tensor.js';
import type { Generator } from '../random.js';
import { mul } from './elementwise.js';

export function dropout(x: Tensor, p: number, gen: Generator, training = true): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dd2: dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const mask = gen.dropoutMask(x.shape, p, x.device);
  const y = mul(x, mask);
  if (!y.node) mask.dispose();
  return y;
}
