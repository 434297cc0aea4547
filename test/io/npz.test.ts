// .npy/.npz: round trips (stored and deflated) of the four dtypes with extreme values, scalar and empty
// arrays; the .npy header text and 64-byte alignment; the zip structure walked by hand (local headers,
// central directory, end record, CRC-32 against a table implementation); corruption errors; and, when
// python3 has numpy, the interop check of test/io/check_npz.py in both directions.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { crc32, crc32Portable, decodeNpy, encodeNpy, readNpz, writeNpz, type NpyInput } from '../../lib/io/npz.js';

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** The arrays of check_npz.py's expected(). */
function expected(): Record<string, NpyInput> {
  return {
    u8: { dtype: 'uint8', shape: [2, 3, 4], data: new Uint8Array(24).map((_, i) => (i * 7) % 256) },
    i4: { dtype: 'int32', shape: [5], data: new Int32Array([-2147483648, -1, 0, 1, 2147483647]) },
    f4: { dtype: 'float32', shape: [3, 2], data: new Float32Array([0.5, -1.25, 3.0e38, 1.4e-45, -Infinity, 7.0]) },
    f8: { dtype: 'float64', shape: [], data: new Float64Array([Math.PI]) },
    empty: { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) },
  };
}

function sameArrays(t: Test, got: ReturnType<typeof readNpz>, want: Record<string, NpyInput>, what: string): void {
  for (const [k, w] of Object.entries(want)) {
    const g = got[k];
    t.ok(g, `${what}: '${k}' present`);
    if (!g) continue;
    t.equal(g.dtype, w.dtype, `${what}: '${k}' dtype`);
    t.same(g.shape, w.shape, `${what}: '${k}' shape`);
    t.ok(bytesOf(g.data).equals(bytesOf(w.data)), `${what}: '${k}' identical bytes`);
  }
}

t.test('CRC-32', async (t) => {
  const check = Buffer.from('123456789');
  t.equal(crc32(check), 0xcbf43926, 'standard check value');
  t.equal(crc32Portable(check), 0xcbf43926, 'table implementation: standard check value');
  const big = Buffer.alloc(100_003).map((_, i) => (i * 31 + 7) & 255);
  t.equal(crc32(big), crc32Portable(big), 'zlib and table implementations agree');
});

t.test('.npy header', async (t) => {
  const parts = encodeNpy('x', { dtype: 'float32', shape: [3, 2], data: new Float32Array(6) });
  const head = Buffer.from(parts[0]);
  t.equal(head.toString('latin1', 0, 8), '\x93NUMPY\x01\x00', 'magic and version 1.0');
  const hlen = head.readUInt16LE(8);
  t.equal((10 + hlen) % 64, 0, 'data starts at a multiple of 64 bytes');
  const text = head.toString('latin1', 10);
  t.equal(text.trimEnd(), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 'header dict as numpy writes it');
  t.ok(text.endsWith(' \n'), 'padded with spaces, ends with a newline');
  const one = Buffer.from(encodeNpy('y', { dtype: 'uint8', shape: [7], data: new Uint8Array(7) })[0]).toString('latin1', 10);
  t.match(one, /'descr': '\|u1'.*'shape': \(7,\)/, "1-D shape is written '(7,)', uint8 as '|u1'");
  const sc = Buffer.from(encodeNpy('z', { dtype: 'float64', shape: [], data: new Float64Array(1) })[0]).toString('latin1', 10);
  t.match(sc, /'descr': '<f8'.*'shape': \(\)/, "scalar shape '()'");
  t.throws(() => encodeNpy('w', { dtype: 'float32', shape: [2], data: new Int32Array(2) }), /float32 data must be a Float32Array/);
  t.throws(() => encodeNpy('w', { dtype: 'int32', shape: [3], data: new Int32Array(2) }), /needs 12 bytes, data has 8/);
});

t.test('round trip, stored and deflated', async (t) => {
  const dir = t.testdir();
  for (const compress of [false, true]) {
    const p = join(dir, compress ? 'c.npz' : 's.npz');
    writeNpz(p, expected(), { compress });
    sameArrays(t, readNpz(p), expected(), compress ? 'deflated' : 'stored');
    t.same(Object.keys(readNpz(p)), Object.keys(expected()), 'member order kept');
  }
  const a = readFileSync(join(dir, 's.npz')), c = readFileSync(join(dir, 'c.npz'));
  t.ok(c.length < a.length, `deflated file is smaller (${c.length} < ${a.length} bytes)`);
  writeNpz(join(dir, 's2.npz'), expected());
  t.ok(readFileSync(join(dir, 's2.npz')).equals(a), 'same arrays give the same bytes (fixed timestamps)');
});

t.test('zip structure', async (t) => {
  const dir = t.testdir();
  for (const compress of [false, true]) {
    const p = join(dir, 'z.npz');
    writeNpz(p, expected(), { compress });
    const buf = readFileSync(p);
    const names = Object.keys(expected()).map((k) => `${k}.npy`);
    const end = buf.length - 22;
    t.equal(buf.readUInt32LE(end), 0x06054b50, 'end of central directory record at the end (no comment)');
    t.equal(buf.readUInt16LE(end + 8), names.length, 'entries on this disk');
    t.equal(buf.readUInt16LE(end + 10), names.length, 'total entries');
    const cdSize = buf.readUInt32LE(end + 12), cdOff = buf.readUInt32LE(end + 16);
    t.equal(cdOff + cdSize, end, 'central directory ends where the end record starts');
    let p0 = cdOff, expectOffset = 0;
    for (const name of names) {
      t.equal(buf.readUInt32LE(p0), 0x02014b50, `${name}: central header signature`);
      const method = buf.readUInt16LE(p0 + 10), crc = buf.readUInt32LE(p0 + 16), csize = buf.readUInt32LE(p0 + 20);
      const usize = buf.readUInt32LE(p0 + 24), nlen = buf.readUInt16LE(p0 + 28), off = buf.readUInt32LE(p0 + 42);
      t.equal(buf.toString('utf8', p0 + 46, p0 + 46 + nlen), name, `${name}: name`);
      t.equal(method, compress ? 8 : 0, `${name}: method ${compress ? 'deflate' : 'stored'}`);
      t.equal(off, expectOffset, `${name}: local header offset`);
      t.equal(buf.readUInt32LE(off), 0x04034b50, `${name}: local header signature`);
      t.equal(buf.readUInt32LE(off + 14), crc, `${name}: local CRC equals central CRC`);
      t.equal(buf.readUInt32LE(off + 18), csize, `${name}: local compressed size`);
      t.equal(buf.readUInt32LE(off + 22), usize, `${name}: local size`);
      const start = off + 30 + buf.readUInt16LE(off + 26) + buf.readUInt16LE(off + 28);
      const body = buf.subarray(start, start + csize);
      const npy = compress ? inflateRawSync(body) : body;
      t.equal(npy.length, usize, `${name}: uncompressed size`);
      t.equal(crc32Portable(npy), crc, `${name}: CRC-32 of the .npy bytes`);
      t.equal(npy.toString('latin1', 0, 6), '\x93NUMPY', `${name}: member is a .npy`);
      expectOffset = start + csize;
      p0 += 46 + nlen + buf.readUInt16LE(p0 + 30) + buf.readUInt16LE(p0 + 32);
    }
    t.equal(expectOffset, cdOff, 'members are back to back, followed by the central directory');
  }
});

t.test('corrupt and unsupported files', async (t) => {
  const dir = t.testdir();
  const p = join(dir, 'x.npz'), q = join(dir, 'bad.npz');
  writeNpz(p, { a: { dtype: 'int32', shape: [4], data: new Int32Array([1, 2, 3, 4]) } });
  const good = readFileSync(p);
  const flip = Buffer.from(good);
  flip[good.indexOf('\x93NUMPY', 0, 'latin1') + 128] ^= 1;   // a data byte of member a
  writeFileSync(q, flip);
  t.throws(() => readNpz(q), /bad\.npz: member 'a\.npy': CRC-32 .* differs/, 'flipped data bit: CRC error');
  writeFileSync(q, good.subarray(0, good.length - 30));
  t.throws(() => readNpz(q), /bad\.npz: not a valid \.npz \(zip\) file: no end-of-central-directory/, 'truncated file');
  writeFileSync(q, Buffer.from('hello, not a zip at all, just some text here'));
  t.throws(() => readNpz(q), /bad\.npz: not a valid \.npz/, 'not a zip');
  const hdr = (descr: string, shape: string, data: number[], fortran = 'False'): Buffer => {
    const h = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;
    const b = Buffer.alloc(10 + h.length);
    b.write('\x93NUMPY\x01\x00', 0, 'latin1');
    b.writeUInt16LE(h.length, 8);
    b.write(h, 10, 'latin1');
    return Buffer.concat([b, Buffer.from(data)]);
  };
  t.throws(() => decodeNpy(hdr('<c8', '(1,)', [0, 0, 0, 0, 0, 0, 0, 0]), 'c.npy'), /c\.npy: dtype '<c8' is not supported/, 'complex dtype');
  t.throws(() => decodeNpy(hdr('<i4', '(2,)', [1, 0, 0, 0]), 'short.npy'), /short\.npy: .*needs 8 data bytes, the file has 4/, 'short data');
  t.throws(() => decodeNpy(hdr('<i8', '(1,)', [0, 0, 0, 0, 1, 0, 0, 0]), 'wide.npy'), /wide\.npy: value 4294967296 at index 0 does not fit int32/,
    'int64 beyond int32');
  t.same(decodeNpy(hdr('>i2', '(2,)', [0xff, 0xfe, 1, 0]), 'be.npy'), { dtype: 'int32', shape: [2], data: new Int32Array([-2, 256]) },
    'big-endian int16 widened');
  t.same(decodeNpy(hdr('<u1', '(2, 3)', [0, 1, 2, 3, 4, 5], 'True'), 'f.npy').data, new Uint8Array([0, 2, 4, 1, 3, 5]),
    'Fortran order converted to C order');
});

const py = process.env.DD2_PYTHON ?? 'python3';
const hasNumpy = spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
t.test('numpy interop (test/io/check_npz.py)', { skip: hasNumpy ? false : `no numpy for ${py} (set DD2_PYTHON)` }, async (t) => {
  const dir = t.testdir();
  const script = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'check_npz.py');
  for (const compress of [false, true]) {
    const ours = join(dir, `ours-${compress}.npz`);
    writeNpz(ours, expected(), { compress });
    const r = spawnSync(py, [script, 'check', ours], { encoding: 'utf8' });
    t.equal(r.status, 0, `numpy reads dd2's ${compress ? 'deflated' : 'stored'} npz: ${r.stdout}${r.stderr}`);
    const theirs = join(dir, `theirs-${compress}.npz`);
    const w = spawnSync(py, [script, 'write', theirs, ...(compress ? ['--compressed'] : [])], { encoding: 'utf8' });
    t.equal(w.status, 0, `numpy wrote an npz: ${w.stdout}${w.stderr}`);
    const got = readNpz(theirs);
    sameArrays(t, got, expected(), `np.${compress ? 'savez_compressed' : 'savez'}`);
    t.same(got.i8, { dtype: 'int32', shape: [3], data: new Int32Array([1, -2, 3]) }, 'int64 -> int32');
    t.same(got.b1, { dtype: 'uint8', shape: [3], data: new Uint8Array([1, 0, 1]) }, 'bool -> uint8');
    t.same(got.fo, { dtype: 'float32', shape: [2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }, 'Fortran order -> C order');
    t.same(got.be, { dtype: 'int32', shape: [3], data: new Int32Array([1, 256, -3]) }, 'big-endian int32');
    t.same(got.f2, { dtype: 'float32', shape: [3], data: new Float32Array([0.5, -2, 65504]) }, 'float16 -> float32');
  }
});
