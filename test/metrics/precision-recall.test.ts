// Improved precision / recall (lib/metrics/precision-recall.ts): identical sets give 1 / 1; far apart sets
// 0 / 0; a 1-D case worked by hand (including a point exactly on a ball's boundary, which counts as
// inside); random sets against a brute-force float64 reference with tiny blocks; errors; and, with
// DD2_METRICS_BENCH=1, the time for 10k x 10k at d = 256.
import t from 'tap';
import { Rng } from '../harness/compare.js';
import { improvedPrecisionRecall, type FeatureSet } from '../../lib/metrics/precision-recall.js';

const set = (data: number[] | Float32Array | Float64Array, d: number): FeatureSet => {
  const a = data instanceof Float32Array || data instanceof Float64Array ? data : Float64Array.from(data);
  return { data: a, n: a.length / d, d };
};

/** Brute force: radii from sorted direct distances, then the two coverage fractions. */
function reference(real: FeatureSet, fake: FeatureSet, k: number): { precision: number; recall: number } {
  const d = real.d;
  const dist2 = (a: FeatureSet, i: number, b: FeatureSet, j: number): number => {
    let s = 0;
    for (let q = 0; q < d; q++) s += (a.data[i * d + q] - b.data[j * d + q]) ** 2;
    return s;
  };
  const radii = (a: FeatureSet): number[] => Array.from({ length: a.n }, (_, i) =>
    Array.from({ length: a.n }, (_, j) => dist2(a, i, a, j)).sort((x, y) => x - y)[k]);
  const rr = radii(real), rf = radii(fake);
  let p = 0, r = 0;
  for (let j = 0; j < fake.n; j++) if (rr.some((rad, i) => dist2(fake, j, real, i) <= rad)) p++;
  for (let i = 0; i < real.n; i++) if (rf.some((rad, j) => dist2(real, i, fake, j) <= rad)) r++;
  return { precision: p / fake.n, recall: r / real.n };
}

t.test('identical sets give 1 / 1, far sets 0 / 0', async (t) => {
  const rng = new Rng(1), d = 16;
  const x = set(rng.normal(300 * d), d);
  const same = improvedPrecisionRecall(x, x);
  t.same([same.precision, same.recall], [1, 1], 'identical');
  const far = set(Float32Array.from(x.data as Float32Array, (v) => v + 1000), d);
  const apart = improvedPrecisionRecall(x, far);
  t.same([apart.precision, apart.recall], [0, 0], 'shifted by 1000 in every coordinate');
});

t.test('1-D case by hand (k = 1)', async (t) => {
  // real 0,1,2,3,4: every radius 1. fake 0.5, 2.9, 3.2, 5, 5.2: radii 2.4, 0.3, 0.3, 0.2, 0.2.
  // precision: 5.2 is 1.2 from 4 (outside); 5 is exactly 1 from 4 (inside) -> 4/5.
  // recall: real 4 is 0.8 from 3.2 (> 0.3) and 1 from 5 (> 0.2) -> outside; the others inside -> 4/5.
  const r = improvedPrecisionRecall(set([0, 1, 2, 3, 4], 1), set([0.5, 2.9, 3.2, 5, 5.2], 1), 1);
  t.equal(r.precision, 0.8, 'precision 4/5');
  t.equal(r.recall, 0.8, 'recall 4/5');
  t.same(Array.from(r.realRadii2), [1, 1, 1, 1, 1], 'real radii² are 1');
  const want = [2.4, 0.3, 0.3, 0.2, 0.2].map((v) => v * v);
  t.ok(Array.from(r.fakeRadii2).every((v, i) => Math.abs(v - want[i]) < 1e-12), `fake radii² ${Array.from(r.fakeRadii2).map((v) => v.toFixed(3)).join(', ')}`);
  // k = 3 on the same real set: radius of 0 is 3 (to 3), of 2 is 2 (to 0 or 4).
  const r3 = improvedPrecisionRecall(set([0, 1, 2, 3, 4], 1), set([0.5, 2.9, 3.2, 5, 5.2], 1), 3);
  t.same(Array.from(r3.realRadii2), [9, 4, 4, 4, 9], 'k = 3 radii² of 0..4');
});

t.test('random sets against brute force, with small blocks', async (t) => {
  const rng = new Rng(2), d = 8;
  const real = set(rng.normal(120 * d), d), fake = set(rng.normal(90 * d, 1.3), d);
  for (const k of [1, 3, 5]) {
    const want = reference(real, fake, k);
    for (const blockElements of [1, 97, 1 << 23]) {
      const got = improvedPrecisionRecall(real, fake, k, { blockElements });
      t.same([got.precision, got.recall], [want.precision, want.recall], `k = ${k}, blocks of ${blockElements}: ${got.precision.toFixed(4)} / ${got.recall.toFixed(4)}`);
    }
  }
  const shifted = set(Float32Array.from(fake.data as Float32Array, (v, i) => v + (i % d === 0 ? 1.5 : 0)), d);
  const a = improvedPrecisionRecall(real, shifted), b = reference(real, shifted, 3);
  t.same([a.precision, a.recall], [b.precision, b.recall], `partly overlapping: ${a.precision.toFixed(4)} / ${a.recall.toFixed(4)}`);
  t.ok(a.precision > 0 && a.precision < 1 && a.recall > 0 && a.recall < 1, 'a case strictly between 0 and 1');
});

t.test('input errors', async (t) => {
  const x = set([0, 1, 2, 3], 1);
  t.throws(() => improvedPrecisionRecall(x, x, 4), /real has 4 points; the k = 4 nearest-neighbour radius needs more than k/);
  t.throws(() => improvedPrecisionRecall(x, set([0, 1, 2, 3, 4, 5, 6, 7], 2)), /feature dimensions differ \(real 1, fake 2\)/);
  t.throws(() => improvedPrecisionRecall({ data: new Float64Array(5), n: 2, d: 2 }, x), /needs 4 values, got 5/);
  t.throws(() => improvedPrecisionRecall(set([0, NaN, 2, 3, 4], 1), x, 1), /real feature \[1, 0\] is NaN/);
  t.throws(() => improvedPrecisionRecall(x, x, 0), /k must be an integer >= 1/);
});

t.test('10k x 10k at d = 256', { skip: process.env.DD2_METRICS_BENCH === '1' ? false : 'set DD2_METRICS_BENCH=1' }, async (t) => {
  const rng = new Rng(3), d = 256, n = 10000;
  const real = set(rng.normal(n * d), d), fake = set(rng.normal(n * d, 1.1), d);
  const t0 = performance.now();
  const r = improvedPrecisionRecall(real, fake);
  const secs = (performance.now() - t0) / 1000;
  t.ok(secs < 120, `10k x 10k, d = 256: ${secs.toFixed(1)} s; precision ${r.precision.toFixed(4)}, recall ${r.recall.toFixed(4)}`);
});
