// Parameter initialisers driven by a seeded Generator (lib/tensor/random.ts, Philox in the addon), so
// a model built from the same seed has the same weights on every run and device. Each returns a new
// plain tensor (no grad); modules wrap it with parameter().
import { native, ScalarOp } from '../tensor/native.js';
import { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { full } from '../tensor/create.js';
import type { Shape } from '../tensor/shape.js';

let defaultGen = new Generator(0);

/** Reseeds the generator used when a layer is built without its own. */
export function manualSeed(seed: number | bigint): void {
  defaultGen = new Generator(seed);
}

export function defaultGenerator(): Generator {
  return defaultGen;
}

/** In-place y = y * s + a (native scalar kernels; x and y may alias). */
function affineInPlace(y: Tensor, s: number, a: number): Tensor {
  if (s !== 1) native.scalar_forward(ScalarOp.mul, y.id, y.id, s, y.size);
  if (a !== 0) native.scalar_forward(ScalarOp.add, y.id, y.id, a, y.size);
  return y;
}

/** Uniform on [lo, hi). */
export function uniform(shape: Shape, lo: number, hi: number, gen: Generator = defaultGen): Tensor {
  if (!(hi >= lo)) throw new RangeError(`dd2: init.uniform: need lo <= hi, got [${lo}, ${hi})`);
  return affineInPlace(gen.uniform(shape), hi - lo, lo);
}

/** Normal with the given mean and standard deviation. */
export function normal(shape: Shape, std = 1, mean = 0, gen: Generator = defaultGen): Tensor {
  if (!(std >= 0)) throw new RangeError(`dd2: init.normal: std must be >= 0, got ${std}`);
  return affineInPlace(gen.normal(shape), std, mean);
}

/** Normal truncated to [mean - 2 std, mean + 2 std] by redrawing out-of-range values on the host. */
export function truncNormal(shape: Shape, std = 0.02, gen: Generator = defaultGen): Tensor {
  const t = gen.normal(shape);
  const host = t.toFloat32Array();
  let bad = host.filter((v) => Math.abs(v) > 2).length;
  while (bad > 0) {
    const more = gen.normal([Math.max(bad * 2, 16)]);
    const vals = more.toFloat32Array().filter((v) => Math.abs(v) <= 2);
    more.dispose();
    for (let i = 0, j = 0; i < host.length && j < vals.length; i++) {
      if (Math.abs(host[i]) > 2) { host[i] = vals[j++]; bad--; }
    }
  }
  for (let i = 0; i < host.length; i++) host[i] *= std;
  native.storage_write(t.storage.id, 0, host);
  return t;
}

/** PyTorch's Linear/Conv default: U(-1/sqrt(fanIn), 1/sqrt(fanIn)) (kaiming_uniform with a = sqrt 5). */
export function fanInUniform(shape: Shape, fanIn: number, gen: Generator = defaultGen): Tensor {
  const b = 1 / Math.sqrt(Math.max(1, fanIn));
  return uniform(shape, -b, b, gen);
}

export function constant(shape: Shape, value: number): Tensor {
  return full(shape, value);
}
