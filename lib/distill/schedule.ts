// Schedules and random draws shared by the distillation stages: the linear learning-rate warm-up of DD2's
// Tab. 11 (start LR 1e-6 rising to the end LR, then constant), the progressive EMA rate of App. E.3
// (β(i) = min(0.9999, (i+1)/(i+10))), per-token timestep draws on an interval, and uniform class labels.
// Letters: B batch, N tokens per image.
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import type { Device } from '../tensor/dtype.js';
import type { Generator } from '../tensor/random.js';
import { addScalar, mulScalar } from '../tensor/ops/elementwise.js';

/**
 * lr(step) for step = 0, 1, ...: linear from `start` (at step 0) to `end` (at step `warmup`), then `end`.
 * warmup 0 gives `end` from the first step.
 */
export function warmupLr(start: number, end: number, warmup: number): (step: number) => number {
  if (!(start >= 0 && end >= 0 && Number.isInteger(warmup) && warmup >= 0)) {
    throw new RangeError(`dd2: warmupLr: need start, end >= 0 and an integer warmup >= 0, got ${start}, ${end}, ${warmup}`);
  }
  return (step: number): number => (step >= warmup ? end : start + ((end - start) * step) / warmup);
}

/**
 * A learning-rate factor that is 1 until the last `fraction` of `total` steps and then falls linearly to 0 at
 * step `total` (fraction 0: always 1).
 */
export function decayFactor(total: number, fraction: number): (step: number) => number {
  if (!(fraction >= 0 && fraction <= 1) || !(total >= 0)) {
    throw new RangeError(`dd2: decayFactor: need total >= 0 and 0 <= fraction <= 1, got ${total}, ${fraction}`);
  }
  const start = total * (1 - fraction), span = total * fraction;
  return (step: number): number => (span === 0 || step < start ? 1 : Math.max(0, (total - step) / span));
}

/** The generator EMA rate after i updates (App. E.3): min(cap, (i+1)/(i+10)); 0.1 at i = 0, 0.918 at 100. */
export function emaBeta(i: number, cap = 0.9999): number {
  return Math.min(cap, (i + 1) / (i + 10));
}

/** Timesteps uniform on [lo, hi], one per element of `shape` (e.g. (B, N): independent per token). */
export function uniformT(gen: Generator, shape: readonly number[], lo: number, hi: number, device?: Device): Tensor {
  if (!(lo >= 0 && hi <= 1 && lo < hi)) throw new RangeError(`dd2: uniformT: need 0 <= lo < hi <= 1, got [${lo}, ${hi}]`);
  const u = gen.uniform(shape, device);
  const s = mulScalar(u, hi - lo);
  u.dispose();
  const t = addScalar(s, lo);
  s.dispose();
  return t;
}

/** B class labels uniform on [0, numClasses), drawn from gen (host copy and int32 tensor). */
export function uniformLabels(gen: Generator, B: number, numClasses: number, device?: Device): { host: Int32Array; t: Tensor } {
  const u = gen.uniform([B], device);
  const uh = u.toFloat32Array();
  u.dispose();
  const host = Int32Array.from(uh, (v) => Math.min(numClasses - 1, Math.floor(v * numClasses)));
  return { host, t: tensor(host, [B], { device }) };
}
