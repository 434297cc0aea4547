// Counter-based RNG: Philox known answers, native streams equal the reference bit for bit, moments,
// reproducibility from (seed, offset), categorical frequencies and dropout; with a GPU, the cpu and
// cuda kernels draw identical streams. Runs on the default device (DD2_DEFAULT_DEVICE=cuda for the GPU).
import t from 'tap';
import { Generator } from '../../lib/tensor/random.js';
import { tensor } from '../../lib/tensor/create.js';
import { tidy, memory } from '../../lib/tensor/engine.js';
import { native } from '../../lib/tensor/native.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { Rng } from '../harness/compare.js';
import { dropout } from '../../lib/tensor/ops/dropout.js';
import { philoxRef, uniformRef, normalRef } from '../ref/random.js';

const before = memory();

t.test('Philox4x32-10 reference matches the Random123 known-answer vectors', async (t) => {
  t.same(philoxRef([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  t.same(philoxRef([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]),
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
  t.same(philoxRef([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
});

t.test('native uniform and normal streams equal the reference', async (t) => {
  tidy(() => {
    const seed = 0x123456789abcn;
    const lo = Number(seed & 0xffffffffn), hi = Number(seed >> 32n);
    const g = new Generator(seed);
    g.offset = 2 ** 33 + 4;           // exercise the high counter word
    const u = g.uniform([37]).toFloat32Array();
    const want = Array.from({ length: 37 }, (_, i) => uniformRef(2 ** 33 + 4 + i, lo, hi));
    t.same(Array.from(u), want, 'uniform: bit-identical to the reference');
    const n = g.normal([21]).toFloat32Array();
    const start = 2 ** 33 + 4 + 40;   // 37 rounded up to a whole block
    let worst = 0;
    n.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - Math.fround(normalRef(start + i, lo, hi)))); });
    t.equal(worst, 0, 'normal: equal to the float64 Box-Muller reference rounded to float32');
  });
});

t.test('reproducible from seed and offset; different seeds differ', async (t) => {
  tidy(() => {
    const a = new Generator(42).normal([1000]).toFloat32Array();
    const b = new Generator(42).normal([1000]).toFloat32Array();
    const c = new Generator(43).normal([1000]).toFloat32Array();
    t.same(Array.from(a), Array.from(b));
    t.not(a[0], c[0]);
    const g = new Generator(42);
    g.normal([10]);
    const st = g.state();
    const next = g.uniform([5]).toFloat32Array();
    t.same(Array.from(Generator.fromState(st).uniform([5]).toFloat32Array()), Array.from(next), 'state round trip');
  });
});

t.test('moments of 200k draws', async (t) => {
  tidy(() => {
    const n = 200000;
    const u = new Generator(5).uniform([n]).toFloat32Array();
    const z = new Generator(6).normal([n]).toFloat32Array();
    const m = (a: Float32Array, f: (v: number) => number): number => a.reduce((s, v) => s + f(v), 0) / a.length;
    // Standard errors: uniform mean 0.29/sqrt(n) = 6.5e-4; normal mean 2.2e-3, variance 3.2e-3. Bounds are 5 sigma.
    t.ok(Math.abs(m(u, (v) => v) - 0.5) < 3.3e-3, `uniform mean ${m(u, (v) => v)}`);
    t.ok(Math.abs(m(u, (v) => v * v) - 1 / 3) < 3.3e-3, `uniform E[x^2] ${m(u, (v) => v * v)}`);
    t.ok(u.every((v) => v >= 0 && v < 1), 'uniform in [0, 1)');
    t.ok(Math.abs(m(z, (v) => v)) < 1.1e-2, `normal mean ${m(z, (v) => v)}`);
    t.ok(Math.abs(m(z, (v) => v * v) - 1) < 1.6e-2, `normal variance ${m(z, (v) => v * v)}`);
    t.ok(Math.abs(m(z, (v) => v ** 4) - 3) < 0.1, `normal kurtosis ${m(z, (v) => v ** 4)}`);
  });
});

t.test('categorical frequencies follow the weights; zero weights never drawn', async (t) => {
  tidy(() => {
    const rows = 40000;
    const w = [0, 1, 3, 0, 6];
    const weights = tensor(Array.from({ length: rows }, () => w).flat(), [rows, 5]);
    const idx = new Generator(9).categorical(weights).toInt32Array();
    const counts = [0, 0, 0, 0, 0];
    idx.forEach((k) => counts[k]++);
    t.equal(counts[0] + counts[3], 0, 'zero-weight classes are never drawn');
    for (const k of [1, 2, 4]) {
      const p = w[k] / 10, se = Math.sqrt(p * (1 - p) / rows);
      t.ok(Math.abs(counts[k] / rows - p) < 5 * se, `class ${k}: ${counts[k] / rows} vs ${p}`);
    }
    t.throws(() => new Generator(1).categorical(tensor([0, 0], [1, 2])), /no positive weight/);
    t.throws(() => new Generator(1).categorical(tensor([1, -1], [1, 2])), /negative/);
  });
});

t.test('dropout keeps 1-p of the entries scaled by 1/(1-p)', async (t) => {
  tidy(() => {
    const x = tensor(new Float32Array(100000).fill(1), [100000]);
    const y = dropout(x, 0.25, new Generator(3)).toFloat32Array();
    const kept = y.filter((v) => v !== 0);
    t.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6), 'kept entries scaled');
    t.ok(Math.abs(kept.length / 1e5 - 0.75) < 5 * Math.sqrt(0.75 * 0.25 / 1e5), `keep rate ${kept.length / 1e5}`);
    t.equal(dropout(x, 0.25, new Generator(3), false), x, 'identity in eval mode');
    t.throws(() => dropout(x, 1, new Generator(3)), /\[0, 1\)/);
  });
});

// Same (seed, offset) on both devices: every value must be the same bit pattern. Offsets 1-3 start
// inside a Philox block, sizes end inside one. Normals: both devices compute Box-Muller in double and
// round once to float32; CUDA's double log/sincos are within 2 ulp of glibc's, so a float32 result could
// only differ if a double value fell within ~2^-51 (relative) of a float32 rounding boundary, about 1e-8
// per draw (the streams are fixed, so such a case would fail every run, never flakily).
const cudaInfo = native.build_info().cuda;
const noGpu = !cudaInfo.compiled ? 'addon built without CUDA'
  : cudaInfo.devices === 0 ? `no CUDA device: ${cudaInfo.error}` : false;

/** Positions where two equal-length typed arrays differ bitwise (first 5) and how many. */
function bitDiff(a: Float32Array | Int32Array, b: Float32Array | Int32Array): string {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return `lengths ${x.length} and ${y.length}`;
  const bad: number[] = [];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) bad.push(i);
  return bad.length ? `${bad.length} differ, first at ${bad.slice(0, 5).map((i) => `${i}: ${a[i]} vs ${b[i]}`).join(', ')}` : '';
}

t.test('cpu and cuda draw bit-identical streams from the same seed and offset', { skip: noGpu }, async (t) => {
  const seeds: bigint[] = [0n, 42n, 0x123456789abcn, (1n << 64n) - 1n];
  const offsets = [0, 1, 2, 3, 2 ** 33 + 5];
  const sizes = [1, 2, 3, 7, 33, 1000, 65537];
  const draw = (seed: bigint, offset: number, f: (g: Generator) => Tensor, read: (x: Tensor) => Float32Array | Int32Array) => {
    const g = new Generator(seed);
    g.offset = offset;
    return read(f(g));
  };
  const f32 = (x: Tensor) => x.toFloat32Array(), i32 = (x: Tensor) => x.toInt32Array();
  let checked = 0;
  for (const seed of seeds) {
    for (const off of offsets) {
      for (const n of sizes) {
        tidy(() => {
          const kinds: [string, (g: Generator, d: 'cpu' | 'cuda') => Tensor][] = [
            ['uniform', (g, d) => g.uniform([n], d)],
            ['normal', (g, d) => g.normal([n], d)],
            ['dropout p=0.3', (g, d) => g.dropoutMask([n], 0.3, d)],
          ];
          for (const [name, f] of kinds) {
            const diff = bitDiff(draw(seed, off, (g) => f(g, 'cpu'), f32), draw(seed, off, (g) => f(g, 'cuda'), f32));
            if (diff) t.fail(`${name} seed=${seed} offset=${off} n=${n}: ${diff}`);
            checked++;
          }
        });
      }
    }
  }
  t.pass(`uniform, normal and dropout streams identical in ${checked} cases`);

  // Categorical: varied widths (one warp chunk, several, a partial last one), zero weights in runs
  // (including at the row's end, where top-end rounding falls back to the last positive weight),
  // and wide dynamic ranges that make the double prefix sums round.
  const rng = new Rng(21);
  for (const cols of [1, 5, 31, 32, 33, 100, 1000, 4099]) {
    const rows = Math.max(3, Math.floor(40000 / cols));
    const w = rng.uniform(rows * cols, 0, 1);
    for (let i = 0; i < w.length; i++) {
      const r = rng.next();
      if (r < 0.3) w[i] = 0;
      else if (r < 0.35) w[i] *= 1e30;
      else if (r < 0.4) w[i] *= 1e-30;
    }
    for (let r = 0; r < rows; r++) {
      if (r % 3 === 0 && cols > 1) w[(r + 1) * cols - 1] = 0;   // trailing zero weight
      if (w.subarray(r * cols, (r + 1) * cols).every((v) => v === 0)) w[r * cols] = 1;
    }
    for (const off of [0, 3, 2 ** 40 + 1]) {
      tidy(() => {
        const a = draw(5n, off, (g) => g.categorical(tensor(w, [rows, cols], { device: 'cpu' })), i32);
        const b = draw(5n, off, (g) => g.categorical(tensor(w, [rows, cols], { device: 'cuda' })), i32);
        const diff = bitDiff(a, b);
        t.equal(diff, '', `categorical ${rows}x${cols} offset=${off}: identical draws`);
      });
    }
  }
  // Invalid rows: the first bad row (and within it the first bad weight) is reported as on the CPU.
  const bad: [string, number[], number][] = [
    ['negative weight', [1, 2, 3, 4, 5, -1, 2, -3, 1], 3],
    ['NaN weight', [1, 2, 3, 0, 0, 1, 4, NaN, 1], 3],
    ['all-zero row', [1, 2, 3, 0, 0, 0, 4, -1, 1], 3],
    ['infinite weight', [1, 2, 3, 1, Infinity, 1, 0, 0, 0], 3],
  ];
  for (const [name, w, cols] of bad) {
    const shape = [w.length / cols, cols];
    const msg = (d: 'cpu' | 'cuda'): string => {
      try {
        tidy(() => { new Generator(1).categorical(tensor(w, shape, { device: d })); });
      } catch (e) {
        return `${(e as Error).constructor.name}: ${(e as Error).message}`;
      }
      return 'no error';
    };
    const m = msg('cpu');
    t.match(m, /^RangeError: .*row \d+ has/, `${name}: cpu throws (${m})`);
    t.equal(msg('cuda'), m, `${name}: cuda throws the same error`);
  }
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
  t.equal(memory().cuda.bytes, before.cuda.bytes);
});
