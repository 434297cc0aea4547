// Inception Score (lib/metrics/inception-score.ts): uniform predictions give 1; confident predictions spread
// evenly over K classes give K; a 4 x 2 case computed by hand (and with numpy, 0 log 0 = 0); uneven splits
// use every row; rows that are not probability vectors are rejected.
import t from 'tap';
import { inceptionScore } from '../../lib/metrics/inception-score.js';

t.test('uniform predictions give 1', async (t) => {
  const n = 200, k = 10;
  const r = inceptionScore(new Float32Array(n * k).fill(0.1), n, k);
  t.ok(Math.abs(r.mean - 1) < 1e-6 && r.std < 1e-6, `IS = ${r.mean} ± ${r.std} (float32 0.1 rows)`);
  t.equal(r.splits.length, 10, 'ten splits by default');
});

t.test('one-hot, classes evenly spread, gives K', async (t) => {
  const n = 1000, k = 10;
  const p = new Float64Array(n * k);
  for (let i = 0; i < n; i++) p[i * k + (i % k)] = 1;
  const r = inceptionScore(p, n, k, 10);
  t.ok(Math.abs(r.mean - k) < 1e-12 && r.std < 1e-12, `IS = ${r.mean} ± ${r.std}`);
  // One class only: every split has p(y) = p(y|x): IS = 1.
  const q = new Float64Array(n * k);
  for (let i = 0; i < n; i++) q[i * k + 3] = 1;
  t.ok(Math.abs(inceptionScore(q, n, k).mean - 1) < 1e-15, 'a single class gives 1');
});

t.test('hand-computed 4 x 2 case', async (t) => {
  // split 1: rows (.9,.1), (.5,.5), p(y) = (.7,.3); split 2: (.2,.8), (0,1), p(y) = (.1,.9).
  const p = new Float64Array([0.9, 0.1, 0.5, 0.5, 0.2, 0.8, 0, 1]);
  const r = inceptionScore(p, 4, 2, 2);
  const want = [1.107105802543201, 1.0777567111456234];   // exp(mean KL) per split (also numpy)
  t.ok(Math.abs(r.splits[0] - want[0]) < 1e-14 && Math.abs(r.splits[1] - want[1]) < 1e-14, `splits ${r.splits.join(', ')}`);
  t.ok(Math.abs(r.mean - (want[0] + want[1]) / 2) < 1e-14, `mean ${r.mean}`);
  t.ok(Math.abs(r.std - Math.abs(want[0] - want[1]) / 2) < 1e-14, `population std ${r.std}`);
  const one = inceptionScore(p, 4, 2, 1);
  t.equal(one.std, 0, 'one split: std 0');
});

t.test('splits that do not divide N use every row', async (t) => {
  // 7 rows in 3 splits: [0,2), [2,4), [4,7). Rows 4..6 alone hold two classes.
  const k = 2, p = new Float64Array(7 * k);
  for (let i = 0; i < 7; i++) p[i * k + (i >= 4 ? i % 2 : 0)] = 1;
  const r = inceptionScore(p, 7, k, 3);
  t.same(r.splits.slice(0, 2), [1, 1], 'one-class splits give 1');
  const want = Math.exp(2 / 3 * Math.log(3 / 2) + 1 / 3 * Math.log(3));   // classes 0,1,0: p(y) = (2/3, 1/3)
  t.ok(Math.abs(r.splits[2] - want) < 1e-14, `last split of 3 rows: ${r.splits[2]} vs ${want}`);
});

t.test('input errors', async (t) => {
  t.throws(() => inceptionScore(new Float64Array([2, -1, 0.5, 0.5]), 2, 2, 1), /probs\[0, 0\] = 2 is not a probability/);
  t.throws(() => inceptionScore(new Float64Array([0.2, 0.2, 0.5, 0.5]), 2, 2, 1), /row 0 sums to 0.4/);
  t.throws(() => inceptionScore(new Float64Array(4).fill(0.5), 2, 2, 3), /splits must be an integer in \[1, N = 2\]/);
  t.throws(() => inceptionScore(new Float64Array(5), 2, 2), /needs 4 values, got 5/);
});
