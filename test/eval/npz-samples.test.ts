// Samples files (lib/eval/npz-samples.ts): dd2's layout (images/labels/tokens) and the ADM layout
// (arr_0 [, arr_1]), grayscale (n, H, W) arrays, and a clear error for each wrong file. What `dd2 sample`
// itself writes is read back in test/eval/cli.test.ts.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNpz } from '../../lib/io/npz.js';
import { readSamplesNpz } from '../../lib/eval/npz-samples.js';

const dir = mkdtempSync(join(tmpdir(), 'dd2-npz-samples-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const u8 = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256);

t.test("dd2's layout", async (t) => {
  const p = join(dir, 'dd2.npz');
  const images = u8(3 * 4 * 4 * 1);
  writeNpz(p, {
    tokens: { dtype: 'int32', shape: [3, 4], data: Int32Array.from({ length: 12 }, (_, i) => i) },
    labels: { dtype: 'int32', shape: [3], data: Int32Array.of(2, 0, 9) },
    images: { dtype: 'uint8', shape: [3, 4, 4, 1], data: images },
  });
  const s = readSamplesNpz(p);
  t.same([s.layout, s.n, s.height, s.width, s.channels], ['dd2', 3, 4, 4, 1]);
  t.same(Array.from(s.images), Array.from(images), 'pixels as stored');
  t.same(Array.from(s.labels!), [2, 0, 9]);
  t.same(Array.from(s.tokens!).slice(0, 5), [0, 1, 2, 3, 4]);
});

t.test('ADM layout, RGB with labels and grayscale without', async (t) => {
  const rgb = join(dir, 'adm.npz');
  writeNpz(rgb, { arr_0: { dtype: 'uint8', shape: [2, 3, 3, 3], data: u8(54) }, arr_1: { dtype: 'int32', shape: [2], data: Int32Array.of(5, 1) } });
  const a = readSamplesNpz(rgb);
  t.same([a.layout, a.n, a.height, a.width, a.channels, Array.from(a.labels!)], ['adm', 2, 3, 3, 3, [5, 1]]);
  t.equal(a.tokens, null);
  const gray = join(dir, 'gray.npz');
  writeNpz(gray, { arr_0: { dtype: 'uint8', shape: [4, 5, 6], data: u8(120) } });
  const g = readSamplesNpz(gray);
  t.same([g.n, g.height, g.width, g.channels, g.labels], [4, 5, 6, 1, null], '(n, H, W) is single-channel, unlabelled');
});

t.test('errors name the file and what was expected', async (t) => {
  t.throws(() => readSamplesNpz(join(dir, 'nope.npz')), /nope\.npz does not exist/);
  const keys = join(dir, 'keys.npz');
  writeNpz(keys, { pictures: { dtype: 'uint8', shape: [1, 2, 2, 1], data: u8(4) } });
  t.throws(() => readSamplesNpz(keys), /keys\.npz holds \[pictures\]; expected 'images'.*'arr_0'/);
  const f32 = join(dir, 'f32.npz');
  writeNpz(f32, { images: { dtype: 'float32', shape: [1, 2, 2, 1], data: new Float32Array(4) } });
  t.throws(() => readSamplesNpz(f32), /'images' holds float32 values; expected uint8/);
  const nchw = join(dir, 'nchw.npz');
  writeNpz(nchw, { arr_0: { dtype: 'uint8', shape: [2, 3, 8, 8], data: u8(384) } });
  t.throws(() => readSamplesNpz(nchw), /looks like NCHW/);
  const lab = join(dir, 'lab.npz');
  writeNpz(lab, { images: { dtype: 'uint8', shape: [2, 2, 2, 1], data: u8(8) }, labels: { dtype: 'int32', shape: [3], data: Int32Array.of(1, 2, 3) } });
  t.throws(() => readSamplesNpz(lab), /'labels' has shape \(3\); expected \(2\)/);
  const neg = join(dir, 'neg.npz');
  writeNpz(neg, { images: { dtype: 'uint8', shape: [2, 2, 2, 1], data: u8(8) }, labels: { dtype: 'int32', shape: [2], data: Int32Array.of(1, -1) } });
  t.throws(() => readSamplesNpz(neg), /'labels'\[1\] = -1/);
  const empty = join(dir, 'empty.npz');
  writeNpz(empty, { images: { dtype: 'uint8', shape: [0, 2, 2, 1], data: new Uint8Array(0) } });
  t.throws(() => readSamplesNpz(empty), /holds no images/);
  const junk = join(dir, 'junk.npz');
  writeFileSync(junk, 'not a zip file at all');
  t.throws(() => readSamplesNpz(junk), /junk\.npz.*not a valid \.npz/);
});
