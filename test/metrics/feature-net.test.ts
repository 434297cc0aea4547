// The domain feature networks (lib/metrics/feature-net.ts, trained by lib/train/feature-net.ts): the shipped
// weights load, their sha256 matches the meta (and a one-value change is refused), they classify the first
// 2000 test images above the floor, the shipped statistics have the documented shapes and are reproduced
// from the weights; extractFeatures gives
// the same features for uint8 NHWC and float NCHW input and for any batch size; perceptualDistance matches a
// float64 host reference on the activations, is 0 for identical images, symmetric and positive otherwise;
// the augmentation shift is exact; a short training run is deterministic for a fixed seed.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { imageBatch, loadDataset, type ImageDataset } from '../../lib/data/dataset.js';
import { fashionMnistDir } from '../../lib/data/fashion-mnist.js';
import { loadModelFile, saveState } from '../../lib/io/checkpoint.js';
import {
  extractFeatures, FEATURE_DIM, FeatureNet, loadFeatureNet, meanCov, perceptualDistance, PERCEPTUAL_EPS, shippedStats, weightsSha256,
} from '../../lib/metrics/feature-net.js';
import { accuracyOf, defaultTrainFeatureNetOptions, shiftedBatch, trainFeatureNet } from '../../lib/train/feature-net.js';
import { expectClose } from '../harness/compare.js';

const fashionPresent = existsSync(join(fashionMnistDir(), 'train-images-idx3-ubyte.gz'));
const before = memory();
const tmp = mkdtempSync(join(tmpdir(), 'dd2-featnet-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

const cases = [
  { dataset: 'mnist' as const, floor: 0.985, skip: false as string | false },
  { dataset: 'fashion-mnist' as const, floor: 0.88, skip: fashionPresent ? false : `Fashion-MNIST not installed in ${fashionMnistDir()}` },
];

for (const c of cases) {
  t.test(`shipped ${c.dataset}: sha256, accuracy on the first 2000 test images, statistics`, { skip: c.skip }, async (t) => {
    const { net, meta } = loadFeatureNet(c.dataset);
    try {
      const file = loadModelFile(meta.path);
      t.equal(weightsSha256(file.state, file.shapes), meta.sha256, `weights sha256 ${meta.sha256} matches the meta`);
      t.equal(meta.dataset, c.dataset);
      t.ok(meta.testAccuracy >= c.floor, `recorded full-split test accuracy ${meta.testAccuracy}`);
      t.ok(JSON.parse(meta.recipe).epochs >= 1, `recipe ${meta.recipe}`);
      t.ok(meta.floors && meta.floors.dfid_train10k_test > 0 && meta.floors['dfid_test_noise0.1'] > 0, `floors ${JSON.stringify(meta.floors)}`);
      const test = await loadDataset(c.dataset, 'test', { limit: 2000 });
      const { probs } = extractFeatures(net, { data: test.images, n: test.n, layout: 'NHWC-u8' });
      const acc = accuracyOf(probs, test.labels!);
      t.ok(acc >= c.floor, `accuracy on the first 2000 test images ${acc} >= ${c.floor}`);
      for (let i = 0; i < 20; i++) {
        const row = probs.subarray(i * 10, i * 10 + 10);
        t.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-5, `probs row ${i} sums to 1`);
      }
      for (const [split, n] of [['train', 60000], ['test', 10000]] as const) {
        const s = shippedStats(c.dataset, split);
        t.equal(s.n, n, `${split}: n`);
        t.equal(s.mu.length, FEATURE_DIM);
        t.equal(s.sigma.length, FEATURE_DIM * FEATURE_DIM);
        let asym = 0, negDiag = 0;
        for (let a = 0; a < FEATURE_DIM; a++) {
          if (s.sigma[a * FEATURE_DIM + a] < 0) negDiag++;
          for (let b = 0; b < a; b++) asym = Math.max(asym, Math.abs(s.sigma[a * FEATURE_DIM + b] - s.sigma[b * FEATURE_DIM + a]));
        }
        t.equal(asym, 0, `${split}: sigma symmetric`);
        t.equal(negDiag, 0, `${split}: variances >= 0`);
      }
      // the shipped test statistics are reproduced from the shipped weights (full test split, float64 moments)
      const full = await loadDataset(c.dataset, 'test');
      const re = meanCov(extractFeatures(net, { data: full.images, n: full.n, layout: 'NHWC-u8' }).features, full.n, FEATURE_DIM);
      const st = shippedStats(c.dataset, 'test');
      expectClose(t, 'mu_test recomputed', re.mu, st.mu, { atol: 1e-5, rtol: 1e-4 });
      expectClose(t, 'sigma_test recomputed', re.sigma, st.sigma, { atol: 1e-5, rtol: 1e-4 });
      t.equal(meta.statsPath.endsWith(`${c.dataset}-stats.npz`), true, `statsPath ${meta.statsPath}`);
    } finally {
      net.dispose();
    }
  });
}

t.test('a changed weight is refused by its sha256; unknown names and wrong files are explained', async (t) => {
  const shipped = loadFeatureNet('mnist');
  shipped.net.dispose();
  const file = loadModelFile(shipped.meta.path);
  const state = new Map(file.state);
  const w = state.get('conv2.weight')!.slice();
  w[5] = Math.fround(w[5] * 1.0001 + 1e-6);
  state.set('conv2.weight', w);
  const bad = join(tmp, 'tampered.safetensors');
  saveState(bad, state, file.shapes, file.meta);
  t.throws(() => loadFeatureNet(bad), /sha256 [0-9a-f]{64} differs from the recorded/);
  t.throws(() => loadFeatureNet('no-such-net'), /neither 'mnist', 'fashion-mnist' nor an existing \.safetensors file/);
  const other = join(tmp, 'other.safetensors');
  saveState(other, state, file.shapes, { kind: 'vq', config: {}, step: 0 });
  t.throws(() => loadFeatureNet(other), /a 'vq' checkpoint, not a feature network/);
});

t.test('extractFeatures: uint8 NHWC = float NCHW, batch size does not matter, input checks', async (t) => {
  const { net } = loadFeatureNet('mnist');
  try {
    const ds = await loadDataset('mnist', 'test', { limit: 37 });
    const u8 = extractFeatures(net, { data: ds.images, n: ds.n, layout: 'NHWC-u8' }, 500);
    const f32 = Float32Array.from(ds.images, (v) => v / 127.5 - 1);
    const f = extractFeatures(net, { data: f32, n: ds.n, layout: 'NCHW-f32' }, 500);
    t.same(Array.from(f.features), Array.from(u8.features), 'identical features for the two layouts');
    t.same(Array.from(f.probs), Array.from(u8.probs), 'identical probabilities for the two layouts');
    const small = extractFeatures(net, { data: ds.images, n: ds.n, layout: 'NHWC-u8' }, 5);
    expectClose(t, 'features, batch 5 vs 500', small.features, u8.features, { atol: 1e-5, rtol: 1e-5 });
    // the network's own forward on imageBatch gives the same features
    const direct = noGrad(() => tidy(() => net.forward(imageBatch(ds, Int32Array.from({ length: ds.n }, (_, i) => i))).features.toFloat32Array()));
    t.same(Array.from(direct), Array.from(u8.features), 'same as net.forward(imageBatch(...))');
    t.ok(u8.features.some((v) => v > 0) && u8.features.every((v) => v >= 0), 'features are post-relu, not all zero');
    t.throws(() => extractFeatures(net, { data: ds.images.subarray(0, 700), n: 1, layout: 'NHWC-u8' }), /1 images of 1x28x28 need 784 values, got 700/);
    t.throws(() => extractFeatures(net, { data: f32, n: ds.n, layout: 'NHWC-u8' }), /layout 'NHWC-u8' needs a Uint8Array/);
    t.throws(() => noGrad(() => tidy(() => net.forward(tensor(new Float32Array(2 * 3 * 28 * 28), [2, 3, 28, 28])))),
      /input must be \(B, 1, 28, 28\) in \[-1, 1\], got \[2, 3, 28, 28\]/);
  } finally {
    net.dispose();
  }
});

/** Float64 reference of perceptualDistance from the network's activations (B, C, H, W) of a and b. */
function perceptualRef(actsA: { data: Float32Array; shape: number[] }[], actsB: { data: Float32Array; shape: number[] }[]): Float64Array {
  const B = actsA[0].shape[0], out = new Float64Array(B);
  for (let l = 0; l < actsA.length; l++) {
    const [, C, H, W] = actsA[l].shape, HW = H * W;
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let p = 0; p < HW; p++) {
        let na = 0, nb = 0;
        for (let c = 0; c < C; c++) { na += actsA[l].data[(b * C + c) * HW + p] ** 2; nb += actsB[l].data[(b * C + c) * HW + p] ** 2; }
        na = Math.sqrt(na) + PERCEPTUAL_EPS; nb = Math.sqrt(nb) + PERCEPTUAL_EPS;
        for (let c = 0; c < C; c++) s += (actsA[l].data[(b * C + c) * HW + p] / na - actsB[l].data[(b * C + c) * HW + p] / nb) ** 2;
      }
      out[b] += s / HW;
    }
  }
  return out;
}

t.test('perceptualDistance: float64 reference, zero on identical images, symmetric, positive otherwise', async (t) => {
  const { net } = loadFeatureNet('mnist');
  try {
    const ds = await loadDataset('mnist', 'test', { limit: 8 });
    noGrad(() => tidy(() => {
      const a = imageBatch(ds, Int32Array.of(0, 1, 2, 3)), b = imageBatch(ds, Int32Array.of(4, 5, 6, 3));
      const dab = perceptualDistance(net, a, b).toFloat32Array(), dba = perceptualDistance(net, b, a).toFloat32Array();
      const daa = perceptualDistance(net, a, a).toFloat32Array();
      const acts = (x: typeof a) => net.forward(x).acts.map((v) => ({ data: v.toFloat32Array(), shape: [...v.shape] }));
      expectClose(t, 'perceptualDistance vs float64 reference', dab, perceptualRef(acts(a), acts(b)), { atol: 1e-6, rtol: 1e-5 });
      t.same(Array.from(daa), [0, 0, 0, 0], 'd(a, a) = 0');
      t.same(Array.from(dab), Array.from(dba), 'd(a, b) = d(b, a)');
      t.equal(dab[3], 0, 'the identical pair (image 3 twice) gives 0');
      for (let i = 0; i < 3; i++) t.ok(dab[i] > 0.05, `different digits: d = ${dab[i]}`);
      // a small perturbation is closer than a different image
      const near = perceptualDistance(net, a, tensor(Float32Array.from(a.toFloat32Array(), (v) => Math.max(-1, v - 0.02)), [...a.shape]));
      const n = near.toFloat32Array();
      for (let i = 0; i < 3; i++) t.ok(n[i] > 0 && n[i] < dab[i], `small change ${n[i]} < other digit ${dab[i]}`);
    }));
  } finally {
    net.dispose();
  }
});

t.test('shiftedBatch: shift 0 is imageBatch; a shift moves pixels and fills with background', async (t) => {
  const ds = await loadDataset('mnist', 'test', { limit: 3 });
  const idx = Int32Array.of(2, 0);
  const plain = tidy(() => imageBatch(ds, idx).toFloat32Array());
  t.same(Array.from(shiftedBatch(ds, idx, 0, () => 0)), Array.from(plain), 'shift 0 equals imageBatch');
  const img = new Uint8Array(784);
  img[10 * 28 + 12] = 255;               // one white pixel at (y 10, x 12)
  img[0] = 100;                          // and one in the corner that leaves the frame
  const one: ImageDataset = { name: 'one', split: 'train', n: 1, height: 28, width: 28, channels: 1, numClasses: 10, images: img, labels: Int32Array.of(0) };
  const draws = [4, 1];                  // shift 2: dx = 4 % 5 - 2 = +2, dy = 1 % 5 - 2 = -1
  const out = shiftedBatch(one, Int32Array.of(0), 2, () => draws.shift()!);
  t.equal(out[(10 - 1) * 28 + 12 + 2], 1, 'the pixel moved by (dx +2, dy -1)');
  t.equal(out.filter((v) => v !== -1).length, 1, 'everything else is background, the corner pixel left the frame');
});

t.test('a short training run is deterministic for a fixed seed and differs for another seed', async (t) => {
  const o = { ...defaultTrainFeatureNetOptions, dataset: 'mnist', epochs: 1, batchSize: 32, warmup: 2, trainLimit: 192, evalLimit: 64, shift: 1 };
  const run = async (seed: number, dir: string) => {
    const r = await trainFeatureNet(join(tmp, dir), { ...o, seed }, { json: true, skipStats: true });
    r.net.dispose();
    return r;
  };
  const a = await run(3, 'a'), b = await run(3, 'b'), c = await run(4, 'c');
  t.equal(a.steps, 6);
  t.equal(a.sha256, b.sha256, `same seed, same weights (${a.sha256.slice(0, 12)})`);
  t.equal(a.trainLoss, b.trainLoss, 'same loss');
  t.not(a.sha256, c.sha256, 'another seed gives other weights');
  t.ok(Number.isFinite(a.trainLoss), `finite loss ${a.trainLoss}`);
  const { net, meta } = loadFeatureNet(a.modelPath);
  t.equal(meta.sha256, a.sha256, 'the written file loads and carries its sha256');
  t.equal(JSON.parse(meta.recipe).seed, 3, 'the recipe records the options');
  net.dispose();
});

t.test('meanCov: hand-computed mean and unbiased covariance', async (t) => {
  // rows (1, 2), (3, 6), (5, 7): mean (3, 5); var 8/2 = 4 and 14/2 = 7; cov ((-2)(-3) + 0·1 + 2·2)/2 = 5
  const s = meanCov(Float32Array.of(1, 2, 3, 6, 5, 7), 3, 2);
  t.same(Array.from(s.mu), [3, 5]);
  t.same(Array.from(s.sigma), [4, 5, 5, 7]);
  t.equal(s.n, 3);
  t.throws(() => meanCov(Float32Array.of(1, 2), 1, 2), /at least 2 rows/);
});

t.test('FeatureNet has the documented size', async (t) => {
  const net = new FeatureNet(0);
  t.equal(net.numParameters(), 320 + 18496 + 55392 + 55360 + 262400 + 2570);
  net.dispose();
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, `live tensors ${before.tensors} -> ${after.tensors}`);
});

