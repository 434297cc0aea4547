// Counter-based RNG: Philox known answers, native streams equal the reference bit for bit, moments,
// reproducibility from (seed, offset), categorical frequencies and dropout.
import t from 'tap';
import { Generator } from '../../lib/tensor/random.js';
import { tensor } from '../../lib/tensor/create.js';
import { tidy, memory } from '../../lib/tensor/engine.js';
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

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
});
