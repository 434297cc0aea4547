// Stage-2 schedules (lib/distill/schedule.ts): the LR warm-up, the end-of-run LR decay and the EMA rate.
import t from 'tap';
import { decayFactor, emaBeta, warmupLr } from '../../lib/distill/schedule.js';

t.test('warm-up: linear from start to end, then constant', async (t) => {
  const f = warmupLr(1e-6, 1e-4, 10);
  t.equal(f(0), 1e-6);
  t.ok(Math.abs(f(5) - (1e-6 + 0.5 * (1e-4 - 1e-6))) < 1e-15, `half-way ${f(5)}`);
  t.equal(f(10), 1e-4);
  t.equal(f(1000), 1e-4);
  t.throws(() => warmupLr(1e-6, 1e-4, 2.5), /integer warmup/);
});

t.test('decay: 1 until the last fraction of the steps, then linear to 0', async (t) => {
  const f = decayFactor(100, 0.25);
  t.equal(f(0), 1);
  t.equal(f(74), 1);
  t.equal(f(75), 1, 'starts at the first decayed step');
  t.ok(Math.abs(f(90) - 0.4) < 1e-12, `f(90) = ${f(90)}`);
  t.equal(f(100), 0);
  t.equal(f(150), 0, 'never negative');
  const none = decayFactor(100, 0);
  t.ok([0, 50, 99, 100].every((i) => none(i) === 1), 'fraction 0 keeps the LR');
  t.throws(() => decayFactor(100, 1.5), /fraction/);
});

t.test('EMA rate: (i+1)/(i+10) capped', async (t) => {
  t.equal(emaBeta(0), 0.1);
  t.ok(Math.abs(emaBeta(100) - 101 / 110) < 1e-15);
  t.equal(emaBeta(1e6, 0.9999), 0.9999);
});
