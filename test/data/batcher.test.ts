// Batcher: every epoch visits each index once (short last batch, or none with dropLast), epochs are
// reshuffled, the order depends only on the seed, and a batcher rebuilt from state() continues
// exactly where the original stopped.
import t from 'tap';
import { Batcher, epochPermutation } from '../../lib/data/dataset.js';

const take = (b: Batcher, k: number): number[][] => Array.from({ length: k }, () => Array.from(b.next()));

t.test('each epoch covers every index once; the last batch is short', async (t) => {
  const b = new Batcher(103, 10, { seed: 7 });
  t.equal(b.batchesPerEpoch, 11);
  const epochs: number[][] = [];
  for (let e = 0; e < 3; e++) {
    t.equal(b.epoch, e, `epoch ${e} starts`);
    const batches = take(b, 11);
    t.same(batches.map((x) => x.length), [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
    const flat = batches.flat();
    t.same([...flat].sort((x, y) => x - y), Array.from({ length: 103 }, (_, i) => i), `epoch ${e}: a permutation`);
    epochs.push(flat);
  }
  t.equal(b.epoch, 3);
  t.notSame(epochs[0], epochs[1], 'reshuffled per epoch');
  t.notSame(epochs[0], Array.from({ length: 103 }, (_, i) => i), 'shuffled');
});

t.test('dropLast drops the short batch; shuffle false keeps the order', async (t) => {
  const d = new Batcher(103, 10, { seed: 7, dropLast: true });
  t.equal(d.batchesPerEpoch, 10);
  const e0 = take(d, 10);
  t.ok(e0.every((x) => x.length === 10));
  t.equal(new Set(e0.flat()).size, 100, '100 distinct indices');
  t.equal(d.epoch, 1, 'the epoch ends after 10 batches');
  t.same(e0.flat(), Array.from(epochPermutation(103, 7, 0).subarray(0, 100)), 'the first 100 of the epoch permutation');
  const s = new Batcher(25, 10, { seed: 1, shuffle: false });
  t.same(take(s, 4), [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [20, 21, 22, 23, 24],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
  const one = new Batcher(5, 8, { seed: 0 });
  t.same([...one.next()].sort(), [0, 1, 2, 3, 4], 'batch larger than n: one short batch per epoch');
  t.equal(one.epoch, 1);
});

t.test('the order depends only on the seed', async (t) => {
  const a = take(new Batcher(50, 8, { seed: 123 }), 20);
  const b = take(new Batcher(50, 8, { seed: 123 }), 20);
  const c = take(new Batcher(50, 8, { seed: 124 }), 20);
  t.same(a, b);
  t.notSame(a, c);
  t.notSame(Array.from(epochPermutation(50, 2 ** 40, 0)), Array.from(epochPermutation(50, 0, 0)), 'high seed bits matter');
  t.notSame(Array.from(epochPermutation(50, 5, 1)), Array.from(epochPermutation(50, 5, 0)));
  // Uniformity: where index 0 lands over 20,000 permutations of 10 (expected 2000 per slot, sd 42;
  // the bound is 6 sd).
  const counts = new Array<number>(10).fill(0);
  for (let e = 0; e < 20000; e++) counts[epochPermutation(10, 99, e).indexOf(0)]++;
  t.ok(counts.every((k) => Math.abs(k - 2000) < 255), `slot counts ${counts.join(' ')}`);
});

t.test('fromState(state()) continues exactly, through JSON, at any point', async (t) => {
  for (const [n, bs, dropLast] of [[103, 10, false], [103, 10, true], [64, 16, false]] as const) {
    for (const k of [0, 1, 5, 10, 11, 23]) {
      const a = new Batcher(n, bs, { seed: 42, dropLast });
      take(a, k);
      const saved = JSON.parse(JSON.stringify(a.state()));
      const b = Batcher.fromState(n, bs, saved, { dropLast });
      t.same(b.state(), a.state());
      t.same(take(b, 25), take(a, 25), `n=${n} bs=${bs} dropLast=${dropLast}: resumed after ${k} batches`);
      t.equal(b.epoch, a.epoch);
    }
  }
});

t.test('invalid arguments and states', async (t) => {
  t.throws(() => new Batcher(0, 4, { seed: 1 }), /n must be a positive integer, got 0/);
  t.throws(() => new Batcher(10, 2.5, { seed: 1 }), /batchSize must be a positive integer, got 2.5/);
  t.throws(() => new Batcher(10, 4, { seed: -1 }), /seed must be a non-negative safe integer, got -1/);
  t.throws(() => new Batcher(10, 11, { seed: 1, dropLast: true }), /batchSize 11 > n 10 with dropLast/);
  t.throws(() => Batcher.fromState(10, 4, { epoch: 0, pos: 10, seed: 1 }), /invalid state/);
  t.throws(() => Batcher.fromState(10, 4, { epoch: 0, pos: 4, seed: 1 }, { seed: 2 }), /state's seed 1 differs from opts.seed 2/);
  t.throws(() => Batcher.fromState(10, 4, { epoch: 0, pos: 8, seed: 1 }, { dropLast: true }), /pos 8 leaves less than a batch of 4/);
});
