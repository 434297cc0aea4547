// Seeded, counter-based random numbers (Philox4x32-10 in the addon). A Generator is a 64-bit seed
// plus a stream position; each draw consumes as many stream elements as it produces values, so a run
// is reproducible from (seed, position) alone and CPU and CUDA kernels produce the same streams.
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { empty, getDefaultDevice } from './create.js';
import { check, expectDtype } from './kernel.js';
import { contiguous } from './ops/shape.js';
import type { Device } from './dtype.js';
import type { Shape } from './shape.js';

export interface GeneratorState { seed: string; offset: number }

export class Generator {
  private lo: number;
  private hi: number;
  offset = 0;

  /** seed: any integer up to 2^53, or a bigint up to 2^64 - 1 */
  constructor(seed: number | bigint = 0) {
    const s = BigInt(seed);
    if (s < 0n || s >= 1n << 64n) throw new RangeError(`dd2: Generator: seed must be in [0, 2^64), got ${seed}`);
    this.lo = Number(s & 0xffffffffn);
    this.hi = Number(s >> 32n);
  }

  get seed(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** Reserves n stream elements and returns the position of the first. Blocks stay 4-aligned so a
   *  draw never shares a Philox block with the previous one. */
  private take(n: number): number {
    const at = this.offset;
    this.offset += Math.ceil(n / 4) * 4;
    if (this.offset > Number.MAX_SAFE_INTEGER) throw new RangeError('dd2: Generator: stream exhausted');
    return at;
  }

  uniform(shape: Shape, device: Device = getDefaultDevice()): Tensor {
    const y = empty(shape, { device });
    check('uniform', ['rng_uniform'], y);
    native.rng_uniform(y.id, y.size, this.lo, this.hi, this.take(y.size));
    return y;
  }

  normal(shape: Shape, device: Device = getDefaultDevice()): Tensor {
    const y = empty(shape, { device });
    check('normal', ['rng_normal'], y);
    native.rng_normal(y.id, y.size, this.lo, this.hi, this.take(y.size));
    return y;
  }

  /** One index per row of non-negative weights (..., V) (need not sum to 1) -> int32 (...). */
  categorical(weights: Tensor): Tensor {
    check('categorical', ['rng_categorical'], weights);
    expectDtype('categorical', weights, 'float32', 'weights');
    const V = weights.shape[weights.rank - 1];
    const rows = weights.size / V;
    const w = contiguous(weights);
    const y = empty(weights.shape.slice(0, -1), { dtype: 'int32', device: weights.device });
    native.rng_categorical(y.id, w.id, rows, V, this.lo, this.hi, this.take(rows));
    if (w !== weights) w.dispose();
    return y;
  }

  /** Dropout mask: 1/(1-p) with probability 1-p, else 0. */
  dropoutMask(shape: Shape, p: number, device: Device = getDefaultDevice()): Tensor {
    const y = empty(shape, { device });
    check('dropout', ['rng_dropout_mask'], y);
    native.rng_dropout_mask(y.id, y.size, p, this.lo, this.hi, this.take(y.size));
    return y;
  }

  state(): GeneratorState {
    return { seed: this.seed.toString(), offset: this.offset };
  }

  static fromState(s: GeneratorState): Generator {
    const g = new Generator(BigInt(s.seed));
    g.offset = s.offset;
    return g;
  }
}
