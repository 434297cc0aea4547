// PNG folders (test/fixtures/png-folder, written by test/fixtures/make-png-folder.ts): class
// sub-folders with the hashed train/test holdout, unlabelled flat folders, explicit train/ and test/
// folders, channel majority and conversion, alpha over black, centre crop + resize, limit, and
// errors that name the bad file or folder.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../../lib/data/dataset.js';
import { resizeImage } from '../../lib/data/resize.js';
import { alphaAt, grayAt, rgbAt, writeFixturePng } from '../fixtures/make-png-folder.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'png-folder');
const luma = ([r, g, b]: number[]): number => Math.round(0.299 * r + 0.587 * g + 0.114 * b);
/** An 8x8 image's pixels from a formula. */
const img8 = (f: (y: number, x: number) => number[]): number[] =>
  Array.from({ length: 64 }, (_, p) => f(Math.floor(p / 8), p % 8)).flat();

t.test('class sub-folders: hashed split, majority gray, alpha over black, luma', async (t) => {
  const root = join(FIX, 'classes');
  const train = await loadDataset(root, 'train');
  // 12 files; FNV-1a(rel) % 10 == 0 puts dots/d1.png and sun/s0.png in test
  t.match(train, { name: resolve(root), split: 'train', n: 10, height: 8, width: 8, channels: 1, numClasses: 3 });
  t.same(train.classNames, ['dots', 'ring', 'sun']);
  t.same(Array.from(train.labels!), [0, 0, 0, 1, 1, 1, 1, 2, 2, 2], 'd0 d2 d3 r0 r1 r2 r3 s1 s2 s3');
  const at = (i: number): number[] => Array.from(train.images.subarray(i * 64, (i + 1) * 64));
  t.same(at(0), img8((y, x) => [grayAt(0, 0, y, x)]), 'dots/d0: gray values');
  t.same(at(4), img8((y, x) => [Math.round((grayAt(1, 1, y, x) * alphaAt(y, x)) / 255)]), 'ring/r1: over black');
  t.same(at(7), img8((y, x) => [luma(rgbAt(1, y, x))]), 'sun/s1: RGB -> luma');
  const test = await loadDataset(root, 'test');
  t.match(test, { split: 'test', n: 2, channels: 1, numClasses: 3 });
  t.same(Array.from(test.labels!), [0, 2], 'dots/d1, sun/s0');
  const again = await loadDataset(train.name, 'train');
  t.same(again.images, train.images, 'the name loads the same data');
});

t.test('requested channels, resize and limit', async (t) => {
  const root = join(FIX, 'classes');
  const rgb = await loadDataset(root, 'train', { channels: 3 });
  t.equal(rgb.channels, 3);
  t.same(Array.from(rgb.images.subarray(7 * 192, 8 * 192)), img8((y, x) => rgbAt(1, y, x)), 'sun/s1 exact RGB');
  t.same(Array.from(rgb.images.subarray(0, 6)), [grayAt(0, 0, 0, 0), grayAt(0, 0, 0, 0), grayAt(0, 0, 0, 0),
    grayAt(0, 0, 0, 1), grayAt(0, 0, 0, 1), grayAt(0, 0, 0, 1)], 'dots/d0 replicated');
  const small = await loadDataset(root, 'train', { size: 4 });
  t.match(small, { n: 10, height: 4, width: 4, channels: 1 });
  const d0 = Uint8Array.from(img8((y, x) => [grayAt(0, 0, y, x)]));
  t.same(small.images.subarray(0, 16), resizeImage(d0, 8, 8, 1, 4, 4), 'dots/d0 area-averaged to 4x4');
  const lim = await loadDataset(root, 'train', { limit: 3 });
  t.same(Array.from(lim.labels!), [0, 1, 1], 'evenly spaced: d0, r0, r3');
  t.same(Array.from(lim.images.subarray(64, 128)), img8((y, x) => [Math.round((grayAt(1, 0, y, x) * alphaAt(y, x)) / 255)]),
    'the second image is ring/r0');
});

t.test('flat folder: unlabelled, sizes must agree unless a size is given, centre crop', async (t) => {
  const root = join(FIX, 'flat');
  await t.rejects(loadDataset(root, 'train'), new RegExp(`${join(root, 'f2.png')} is 10x10 but ${join(root, 'f1.png')} is 8x8; pass a size`));
  const train = await loadDataset(root, 'train', { size: 6 });
  t.match(train, { n: 3, height: 6, width: 6, channels: 3, numClasses: 0, labels: null });
  t.same(train.classNames, []);
  const f3 = Array.from({ length: 36 }, (_, p) => rgbAt(3, Math.floor(p / 6), p % 6)).flat();
  t.same(Array.from(train.images.subarray(2 * 108)), f3, 'f3 is already 6x6: unchanged; notes.txt ignored');
  const test = await loadDataset(root, 'test', { size: 8 });              // f0.png: 8 x 12
  t.equal(test.n, 1);
  t.same(Array.from(test.images), img8((y, x) => rgbAt(0, y, x + 2)), '8x12 -> centre 8x8 (columns 2..9)');
});

t.test('explicit train/ and test/ folders share the train class list', async (t) => {
  const root = join(FIX, 'split');
  const train = await loadDataset(root, 'train');
  t.match(train, { n: 4, height: 6, width: 6, channels: 1, numClasses: 2 });
  t.same(Array.from(train.labels!), [0, 0, 1, 1]);
  const test = await loadDataset(root, 'test');
  t.same(test.classNames, ['a', 'b']);
  t.same(Array.from(test.labels!), [1], 'test has only class b');
  t.equal(test.images[6 * 2 + 3], grayAt(1, 2, 2, 3));
});

t.test('errors name the bad file or folder', async (t) => {
  const dir = t.testdir({
    corrupt: { a: { 'ok.png': '' } },
    notpng: { 'x.png': 'hello, this is text, not an image' },
    mixed: { 'loose.png': '', cls: {} },
    emptyclass: { a: {}, b: {} },
    extra: { train: { a: {} }, test: { z: {} } },
    lonely: {},
  });
  const px = (): [number, number, number, number] => [1, 2, 3, 255];
  writeFixturePng(join(dir, 'corrupt', 'a', 'ok.png'), 2, 2, 2, px);
  const bad = join(dir, 'corrupt', 'a', 'bad.png');
  const good = Buffer.from(Array.from({ length: 40 }, (_, i) => i));
  writeFileSync(bad, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
    Buffer.from('IHDR'), Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]), good]));
  await t.rejects(loadDataset(join(dir, 'corrupt'), 'train', { channels: 3 }), new RegExp(`cannot decode ${bad}`));
  await t.rejects(loadDataset(join(dir, 'notpng'), 'train'), new RegExp(`${join(dir, 'notpng', 'x.png')} is not a PNG file`));
  writeFixturePng(join(dir, 'mixed', 'loose.png'), 2, 2, 2, px);
  writeFixturePng(join(dir, 'mixed', 'cls', 'in.png'), 2, 2, 2, px);
  await t.rejects(loadDataset(join(dir, 'mixed'), 'train'), /mixed: holds both PNG files and sub-folders \(cls\)/);
  writeFixturePng(join(dir, 'emptyclass', 'a', 'one.png'), 2, 2, 2, px);
  await t.rejects(loadDataset(join(dir, 'emptyclass'), 'train'), new RegExp(`${join(dir, 'emptyclass', 'b')}: class folder holds no PNG files`));
  writeFixturePng(join(dir, 'extra', 'train', 'a', 'a.png'), 2, 2, 2, px);
  writeFixturePng(join(dir, 'extra', 'test', 'z', 'z.png'), 2, 2, 2, px);
  await t.rejects(loadDataset(join(dir, 'extra'), 'test'), /class 'z' is not in train\//);
  mkdirSync(join(dir, 'lonely'), { recursive: true });
  writeFixturePng(join(dir, 'lonely', 'only.png'), 2, 2, 2, px);          // FNV-1a('only.png') % 10 != 0
  await t.rejects(loadDataset(join(dir, 'lonely'), 'test'), /no images in the test split/);
  t.equal((await loadDataset(join(dir, 'lonely'), 'train')).n, 1);
  await t.rejects(loadDataset(join(dir, 'nowhere'), 'train'), /unknown dataset '.*nowhere'/);
});
