// The metric plumbing (lib/eval/metrics.ts) on a toy feature extractor whose features and classes are
// known by construction (quadrant means; class = first pixel mod 10), then the real domain network: MNIST
// test images against the shipped test statistics give a small dFID, uniform noise a large one.
// lib/eval/metrics.ts needs lib/metrics/{fid, inception-score, precision-recall, stats-io}.ts (another helper's
// work) and assets/featnet/ (the shipped network): each part skips with the reason while they are missing.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { joinRoot, native } from '../../lib/tensor/native.js';
import { Generator } from '../../lib/tensor/random.js';
import { writeNpz } from '../../lib/io/npz.js';
import { loadDataset } from '../../lib/data/dataset.js';
import type { FeatureExtractor, ImageSet } from '../../lib/eval/metrics.js';

const missing = ['fid', 'inception-score', 'precision-recall', 'stats-io'].filter((f) => !existsSync(joinRoot('lib', 'metrics', `${f}.ts`)));
const noAssets = !existsSync(joinRoot('assets', 'featnet', 'mnist.safetensors'));
const noLinalg = typeof (native as unknown as Record<string, unknown>).sym_eig_f64 !== 'function';
const why = missing.length ? `lib/metrics/{${missing.join(',')}}.ts not present yet` : noLinalg ? 'the addon has no sym_eig_f64 (rebuild it)' : '';
const dir = mkdtempSync(join(tmpdir(), 'dd2-eval-metrics-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Features: the mean of each 2x2 quadrant block of an S x S single-channel image (F = 4); probs: one-hot of
 *  (first pixel mod 10), so the test decides each image's class. */
function toyExtractor(S: number): FeatureExtractor & { calls: number } {
  return {
    name: 'toy', sha256: 'f'.repeat(64), dim: 4, inputSize: S, inputChannels: 1, numProbs: 10, classifiesDataset: 'toy', calls: 0,
    extract(s: ImageSet) {
      this.calls++;
      const h = S / 2, features = new Float32Array(s.n * 4), probs = new Float32Array(s.n * 10);
      for (let i = 0; i < s.n; i++) {
        const img = s.images.subarray(i * S * S, (i + 1) * S * S);
        for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) features[i * 4 + (y >= h ? 2 : 0) + (x >= h ? 1 : 0)] += img[y * S + x] / (h * h);
        probs[i * 10 + (img[0] % 10)] = 1;
      }
      return { features, probs };
    },
    referenceStats: () => null,
    dispose() {},
  };
}

function randomSet(n: number, S: number, seed: number, scale = 255): ImageSet {
  const u = new Generator(seed).uniform([n * S * S], 'cpu');
  const images = Uint8Array.from(u.toFloat32Array(), (v) => Math.floor(v * scale));
  u.dispose();
  return { n, height: S, width: S, channels: 1, images, labels: null };
}

t.test('computeMetrics and references on a toy extractor', { skip: why || false }, async (t) => {
  const m = await import('../../lib/eval/metrics.js');
  const { featureStats } = await import('../../lib/metrics/fid.js');
  const S = 4, ex = toyExtractor(S);
  const set = randomSet(200, S, 1);
  for (let i = 0; i < set.n; i++) set.images[i * S * S] = i % 10;          // class i % 10
  set.labels = Int32Array.from({ length: set.n }, (_, i) => (i % 4 === 0 ? (i + 1) % 10 : i % 10));   // 1 in 4 wrong
  const f = ex.extract(set, 64).features;
  const ref: import('../../lib/eval/metrics.js').Reference = { name: 'self', stats: featureStats(f, set.n, 4), prFeatures: f, prN: set.n };
  const r = m.computeMetrics(set, ex, ref, { batch: 64 });
  t.ok(Math.abs(r.fid.value) < 1e-6, `FID of a set against its own statistics ~ 0: ${r.fid.value}`);
  t.ok(Math.abs(r.is!.value - 10) < 1e-6, `IS of one-hot, evenly spread classes = K = 10: ${r.is!.value}`);
  t.equal(r.is!.splits, 10);
  t.equal(r.classAccuracy!.value, 0.75, 'class accuracy counts argmax == requested label');
  t.same([r.precision!.value, r.recall!.value], [1, 1], 'identical sets: precision = recall = 1');
  t.same([r.n, r.fid.n, r.fid.net, r.fid.ref, r.precision!.k], [200, 200, 'toy@ffffffffffff', 'self', 3], 'provenance on every number');
  const other = m.computeMetrics(randomSet(100, S, 2, 40), ex, ref, { batch: 64, dataset: 'mnist' });
  t.ok(other.fid.value > 100, `dark images are far from the reference: FID ${other.fid.value.toFixed(1)}`);
  t.ok(other.precision!.value < 0.05, `and outside its balls: precision ${other.precision!.value}`);
  t.equal(other.classAccuracy, null, 'no labels (and another dataset): no class accuracy');

  // references from files
  const stats = featureStats(f, set.n, 4);
  const pf = join(dir, 'pf.npz');
  writeNpz(pf, { mu: { dtype: 'float64', shape: [4], data: stats.mu }, sigma: { dtype: 'float64', shape: [4, 4], data: stats.sigma } });
  const refPf = await m.resolveReference(pf, ex, { prN: 10, batch: 64, resize: false });
  t.same(Array.from(refPf.stats.mu), Array.from(stats.mu), 'pytorch-fid mu/sigma are read');
  t.equal(refPf.prFeatures, null, 'a stats-only file has no images for precision/recall');
  const adm = join(dir, 'adm.npz');
  writeNpz(adm, { arr_0: { dtype: 'uint8', shape: [200, S, S, 1], data: set.images } });
  const refAdm = await m.resolveReference(adm, ex, { prN: 50, batch: 64, resize: false });
  t.ok(Array.from(refAdm.stats.mu).every((v, i) => Math.abs(v - stats.mu[i]) < 1e-9), 'ADM arr_0: statistics computed from its images');
  t.same([refAdm.prN, refAdm.prFeatures!.length], [50, 200], 'precision/recall against the first prN images');
  const wrong = join(dir, 'wrong.npz');
  writeNpz(wrong, { mu: { dtype: 'float64', shape: [3], data: new Float64Array(3) }, sigma: { dtype: 'float64', shape: [3, 3], data: new Float64Array(9) } });
  await t.rejects(m.resolveReference(wrong, ex, { prN: 10, batch: 64, resize: false }), /dimension 3 do not match toy's 4 features/);
  const junk = join(dir, 'junk.npz');
  writeNpz(junk, { x: { dtype: 'float64', shape: [1], data: new Float64Array(1) } });
  await t.rejects(m.resolveReference(junk, ex, { prN: 10, batch: 64, resize: false }), /expected 'mu' and 'sigma'/);
  await t.rejects(m.resolveReference('nowhere.npz', ex, { prN: 10, batch: 64, resize: false }), /neither 'dataset:split'/);
  t.same(m.parseDatasetSpec('mnist:test'), { dataset: 'mnist', split: 'test' });
  t.same(m.parseDatasetSpec('/data/x:y:train'), { dataset: '/data/x:y', split: 'train' });
  t.equal(m.parseDatasetSpec('mnist'), null);

  // image size checks
  const big = randomSet(3, 8, 4);
  t.throws(() => m.fitImages(big, ex, false, '--samples x.npz'), /--samples x\.npz: images are 8x8x1 but toy takes 4x4x1; pass --resize/);
  const fitted = m.fitImages({ ...big, channels: 3, images: new Uint8Array(3 * 64 * 3).fill(90) }, ex, true, 'x');
  t.same([fitted.height, fitted.width, fitted.channels, fitted.images.length], [4, 4, 1, 48], 'resized and converted to gray');
  t.ok(fitted.images.every((v) => v === 90), 'a flat image stays flat');
});

t.test('domain network: real MNIST test images vs uniform noise', { skip: why
  || (noAssets ? 'assets/featnet/mnist.safetensors (the shipped feature network) not present yet' : false) }, async (t) => {
  const m = await import('../../lib/eval/metrics.js');
  const ex = new m.DomainExtractor('mnist');
  t.teardown(() => ex.dispose());
  const n = 1000;
  const ref = await m.resolveReference('mnist:test', ex, { prN: n, batch: 250, resize: false });
  t.match(ref.name, /mnist:test \(statistics shipped with the network, n=10000\)/);
  const test = await loadDataset('mnist', 'test', { limit: n });
  const train = await loadDataset('mnist', 'train', { limit: n });
  const asSet = (d: typeof test): ImageSet => ({ n: d.n, height: 28, width: 28, channels: 1, images: d.images, labels: d.labels });
  const real = m.computeMetrics(asSet(train), ex, ref, { batch: 250 });
  const noise = m.computeMetrics(randomSet(n, 28, 5), ex, ref, { batch: 250 });
  t.comment(`train-1000 vs test stats: dFID ${real.fid.value.toFixed(3)}, IS ${real.is!.value.toFixed(2)}, P ${real.precision!.value.toFixed(3)}, ` +
    `R ${real.recall!.value.toFixed(3)}, acc ${real.classAccuracy!.value.toFixed(4)}; noise: dFID ${noise.fid.value.toFixed(1)}, IS ${noise.is!.value.toFixed(2)}, ` +
    `P ${noise.precision!.value.toFixed(3)}, R ${noise.recall!.value.toFixed(3)}`);
  // dFID has the scale of this network's features (not Inception's): at n = 1000 the real images measure ~25
  // (mostly the small-n bias; DATA-EVAL.md §3.1) and uniform noise ~1300, so the test is relative
  t.ok(real.fid.value < noise.fid.value / 20, `1000 real (train) images: dFID ${real.fid.value.toFixed(2)}, ` +
    `far below uniform noise's ${noise.fid.value.toFixed(1)}`);
  const train3 = await loadDataset('mnist', 'train', { limit: 3000 });
  const more = m.computeMetrics(asSet(train3), ex, ref, { batch: 500 });
  t.ok(more.fid.value < 0.7 * real.fid.value, `3000 real images: smaller dFID (the small-n bias): ${more.fid.value.toFixed(2)}`);
  t.ok(real.classAccuracy!.value > 0.97, `the network classifies real images: ${real.classAccuracy!.value}`);
  t.ok(real.is!.value > 8 && noise.is!.value < real.is!.value, `IS real ${real.is!.value.toFixed(2)} > noise ${noise.is!.value.toFixed(2)}`);
  t.ok(real.precision!.value > 0.8 && real.recall!.value > 0.8, 'real images: high precision and recall');
  // noise lands in one low-activation spot of feature space (feature norm ~13 vs ~45 for digits) that lies inside
  // the 3-NN ball of some faint real digit, so its precision is not near 0 with this network; recall is
  t.ok(noise.recall!.value < 0.05, `noise: recall near 0 (${noise.recall!.value}); precision ${noise.precision!.value}`);
  t.match(real.net, /^domain:mnist@[0-9a-f]{12}$/, 'the network is named with its sha256 prefix');
});
