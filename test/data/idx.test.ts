// IDX parser on synthetic buffers: header and dims (big-endian), gzip detection, SHA-256 checks,
// and a clear error naming the file for each kind of damage (bad magic, unsupported type,
// truncated header or data, trailing bytes, truncated gzip, checksum mismatch).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadIdxPair, parseIdx, readIdxFile, sha256Hex } from '../../lib/data/idx.js';

/** An uint8 IDX file with the given dims; data[i] = (i * 7 + 3) & 255. */
function makeIdx(dims: number[], type = 0x08): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  const buf = new Uint8Array(4 + 4 * dims.length + count);
  const view = new DataView(buf.buffer);
  buf[2] = type; buf[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < count; i++) buf[4 + 4 * dims.length + i] = (i * 7 + 3) & 255;
  return buf;
}

t.test('parses dims (big-endian) and data of 1- and 3-dim files', async (t) => {
  const a = parseIdx(makeIdx([3, 2, 5]), 'a');
  t.same(a.dims, [3, 2, 5]);
  t.equal(a.data.length, 30);
  t.same(Array.from(a.data.subarray(0, 4)), [3, 10, 17, 24]);
  t.notOk(Buffer.isBuffer(a.data), 'a plain Uint8Array, so slice() copies');
  const big = parseIdx(makeIdx([300]), 'b');      // 300 = 0x0000012c: needs both low bytes in order
  t.same(big.dims, [300]);
  t.equal(big.data[299], (299 * 7 + 3) & 255);
  t.same(parseIdx(makeIdx([0, 28, 28]), 'empty').dims, [0, 28, 28], 'zero images is a valid file');
});

t.test('each kind of damage gives an error naming the file', async (t) => {
  const good = makeIdx([4, 3, 3]);
  const bad = (mutate: (b: Uint8Array) => Uint8Array): Uint8Array => mutate(good.slice());
  t.throws(() => parseIdx(bad((b) => { b[0] = 0x1f; return b; }), 'f.idx'), /IDX file f\.idx: bad magic 0x1f000803/);
  t.throws(() => parseIdx(makeIdx([4], 0x0d), 'f.idx'), /f\.idx: element type float32 is not supported/);
  t.throws(() => parseIdx(makeIdx([4], 0x42), 'f.idx'), /f\.idx: unknown type code 0x42/);
  t.throws(() => parseIdx(good.subarray(0, 3), 'f.idx'), /f\.idx: truncated: 3 bytes, shorter than the 4-byte magic/);
  t.throws(() => parseIdx(good.subarray(0, 10), 'f.idx'), /f\.idx: truncated: 10 bytes, shorter than its 16-byte header \(3 dims\)/);
  t.throws(() => parseIdx(good.subarray(0, good.length - 1), 'f.idx'),
    /f\.idx: truncated: dims \[4, 3, 3\] need 36 data bytes after the 16-byte header, found 35/);
  const longer = new Uint8Array(good.length + 2); longer.set(good);
  t.throws(() => parseIdx(longer, 'f.idx'), /f\.idx: 2 unexpected trailing bytes/);
  t.throws(() => parseIdx(bad((b) => { b[3] = 0; return b; }), 'f.idx'), /f\.idx: zero dimensions/);
});

t.test('readIdxFile: plain and gzipped files, checksums of the uncompressed bytes', async (t) => {
  const dir = t.testdir();
  const raw = makeIdx([5, 4, 4]);
  const digest = sha256Hex(raw);
  t.equal(digest.length, 64);
  writeFileSync(join(dir, 'plain'), raw);
  writeFileSync(join(dir, 'zipped.gz'), gzipSync(raw));
  for (const name of ['plain', 'zipped.gz']) {
    const a = await readIdxFile(join(dir, name), digest);
    t.same(a.dims, [5, 4, 4], name);
    t.same(a.data, raw.subarray(16), `${name}: data`);
    t.equal(a.sha256, digest, `${name}: sha256 of the uncompressed content`);
  }
  await t.rejects(readIdxFile(join(dir, 'plain'), '0'.repeat(64)),
    new RegExp(`IDX file ${join(dir, 'plain')}: sha256 mismatch: got ${digest}, expected 0{64}`));
  const gz = gzipSync(raw);
  writeFileSync(join(dir, 'cut.gz'), gz.subarray(0, gz.length - 12));
  await t.rejects(readIdxFile(join(dir, 'cut.gz')), /IDX file .*cut\.gz: corrupt or truncated gzip data/);
  writeFileSync(join(dir, 'cut'), raw.subarray(0, 40));
  await t.rejects(readIdxFile(join(dir, 'cut')), /IDX file .*cut: truncated: dims \[5, 4, 4\] need 80 data bytes/);
  await t.rejects(readIdxFile(join(dir, 'missing')), /IDX file .*missing: cannot read/);
});

t.test('loadIdxPair checks that images and labels agree', async (t) => {
  const dir = t.testdir();
  const images = makeIdx([3, 2, 2]);
  const labels = makeIdx([3]);
  labels.set([2, 0, 1], 8);
  writeFileSync(join(dir, 'img'), images);
  writeFileSync(join(dir, 'lab'), labels);
  writeFileSync(join(dir, 'lab4'), makeIdx([4]));
  const spec = { name: 'toy', split: 'train' as const, imagesPath: join(dir, 'img'), labelsPath: join(dir, 'lab'),
    imagesSha256: null, labelsSha256: sha256Hex(labels), classNames: ['x', 'y', 'z'] };
  const ds = await loadIdxPair(spec);
  t.match(ds, { name: 'toy', split: 'train', n: 3, height: 2, width: 2, channels: 1, numClasses: 3 });
  t.same(Array.from(ds.labels!), [2, 0, 1]);
  t.same(ds.images, images.subarray(16));
  await t.rejects(loadIdxPair({ ...spec, classNames: ['x', 'y'] }), /lab: label 2 at index 0 is not below 2/);
  await t.rejects(loadIdxPair({ ...spec, labelsPath: join(dir, 'lab4'), labelsSha256: null }), /3 images but 4 labels/);
  await t.rejects(loadIdxPair({ ...spec, imagesPath: join(dir, 'lab'), imagesSha256: null }),
    /lab: expected 3 dims \(N, H, W\) for images, got \[3\]/);
});
