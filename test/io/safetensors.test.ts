// safetensors reader/writer: round trips of every dtype (with extreme values, empty and scalar
// tensors), metadata, byte identity with files written by the Python library (hand-copied bytes),
// F16/I64/BOOL reading, every corruption error naming the file, bf16 rounding, and (when a Python
// with numpy + safetensors is found: DD2_PYTHON or python3) a live interop check both ways.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bf16ToF32, decodeSafetensors, encodeSafetensors, f32ToBf16, readSafetensors, writeSafetensors, type NamedArray,
} from '../../lib/io/safetensors.js';

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function sample(): Map<string, NamedArray> {
  const f = new Float32Array([0, -0, 1.5, -3.25e-38, 3.4028234663852886e38, 1.401298464324817e-45, Infinity, -Infinity, NaN, Math.PI]);
  return new Map<string, NamedArray>([
    ['weights.f32', { dtype: 'F32', shape: [2, 5], data: f }],
    ['ints', { dtype: 'I32', shape: [5], data: new Int32Array([-2147483648, -1, 0, 1, 2147483647]) }],
    ['bytes', { dtype: 'U8', shape: [3, 1, 2], data: new Uint8Array([0, 1, 127, 128, 254, 255]) }],
    ['half', { dtype: 'BF16', shape: [4], data: new Uint16Array([0x3f80, 0xbf80, 0x7f80, 0x7fc0]) }],
    ['empty', { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) }],
    ['scalar', { dtype: 'I32', shape: [], data: new Int32Array([42]) }],
  ]);
}

t.test('round trip of every dtype with metadata', async (t) => {
  const dir = t.testdir();
  const p = join(dir, 'a.safetensors');
  const arrays = sample();
  const meta = { b: 'two', a: '{"json": [1, 2]}', 'ünï': 'cödé' };
  writeSafetensors(p, arrays, meta);
  const back = readSafetensors(p);
  t.same(back.metadata, meta, 'metadata strings come back');
  t.same([...back.arrays.keys()].sort(), [...arrays.keys()].sort(), 'same tensor names');
  for (const [k, a] of arrays) {
    const b = back.arrays.get(k)!;
    t.equal(b.dtype, a.dtype, `${k}: dtype`);
    t.same(b.shape, a.shape, `${k}: shape`);
    t.equal(b.data.constructor, a.data.constructor, `${k}: array type`);
    t.ok(bytesOf(b.data).equals(bytesOf(a.data)), `${k}: identical bytes (NaN, -0, infinities, extremes)`);
  }
  const buf = readFileSync(p);
  const n = Number(buf.readBigUInt64LE(0));
  t.equal(n % 8, 0, 'header padded to a multiple of 8 bytes (data section 8-aligned)');
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  t.same(Object.keys(header), ['__metadata__', 'empty', 'ints', 'scalar', 'weights.f32', 'half', 'bytes'],
    'layout: element size descending, then name (as the Python library writes)');
  t.ok(encodeSafetensors(arrays, meta).every((c, i) => bytesOf(c).equals(bytesOf(encodeSafetensors(arrays, meta)[i]))),
    'deterministic bytes');
  const noMeta = join(dir, 'b.safetensors');
  writeSafetensors(noMeta, new Map([['x', { dtype: 'U8', shape: [1], data: new Uint8Array([9]) }]]));
  t.same(readSafetensors(noMeta).metadata, {}, 'no __metadata__ -> {}');
});

// Bytes of safetensors 0.8.0 (Python): save({'b': int32 [1,2,3], 'a': float32 [[1,2],[3,4]],
// 'c': uint8 [255,0]}, metadata={'k': 'v'}).
const PY_HEADER = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},' +
  '"b":{"dtype":"I32","shape":[3],"data_offsets":[16,28]},"c":{"dtype":"U8","shape":[2],"data_offsets":[28,30]}} ';
const PY_FILE = Buffer.concat([
  Buffer.from([0xc0, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(PY_HEADER, 'utf8'),
  Buffer.from([0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40]),
  Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]), Buffer.from([0xff, 0]),
]);
// save({'h': float16 [1.5, -2, 65504], 'q': int64 [-5, 7], 'z': bool [True, False]})
const PY_FILE2 = Buffer.concat([
  Buffer.from([0xa8, 0, 0, 0, 0, 0, 0, 0]),
  Buffer.from('{"q":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},' +
    '"z":{"dtype":"BOOL","shape":[2],"data_offsets":[22,24]}}  ', 'utf8'),
  Buffer.from([0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0]),
  Buffer.from([0x00, 0x3e, 0x00, 0xc0, 0xff, 0x7b]), Buffer.from([1, 0]),
]);

t.test('byte-identical to the Python library', async (t) => {
  t.equal(PY_FILE.length, 8 + 0xc0 + 30, 'hand-copied reference is self-consistent');
  const arrays = new Map<string, NamedArray>([
    ['b', { dtype: 'I32', shape: [3], data: new Int32Array([1, 2, 3]) }],
    ['a', { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }],
    ['c', { dtype: 'U8', shape: [2], data: new Uint8Array([255, 0]) }],
  ]);
  const ours = Buffer.concat(encodeSafetensors(arrays, { k: 'v' }));
  t.ok(ours.equals(PY_FILE), `same bytes as safetensors.numpy.save\n ours: ${ours.toString('latin1', 8, 8 + 0xc0)}`);
  const r = decodeSafetensors(PY_FILE, 'py.safetensors');
  t.same(Array.from(r.arrays.get('a')!.data), [1, 2, 3, 4]);
  t.same(r.arrays.get('a')!.shape, [2, 2]);
  t.same(Array.from(r.arrays.get('b')!.data), [1, 2, 3]);
  t.same(Array.from(r.arrays.get('c')!.data), [255, 0]);
  t.same(r.metadata, { k: 'v' });
  const r2 = decodeSafetensors(PY_FILE2, 'py2.safetensors');
  t.same(r2.arrays.get('h'), { dtype: 'F32', shape: [3], data: new Float32Array([1.5, -2, 65504]) }, 'F16 widened to F32 exactly');
  t.same(r2.arrays.get('q'), { dtype: 'I32', shape: [2], data: new Int32Array([-5, 7]) }, 'I64 narrowed to I32');
  t.same(r2.arrays.get('z'), { dtype: 'U8', shape: [2], data: new Uint8Array([1, 0]) }, 'BOOL read as U8');
  const big = Buffer.from(PY_FILE2);
  big.writeBigInt64LE(1n << 40n, 8 + 0xa8);
  t.throws(() => decodeSafetensors(big, 'big.safetensors'), /big\.safetensors: I64 tensor 'q' holds 1099511627776/,
    'an I64 value outside int32 is an error, not a silent wrap');
});

t.test('corrupt files give clear errors naming the file', async (t) => {
  const dir = t.testdir();
  const p = join(dir, 'bad.safetensors');
  const hdr = (json: string, data: number[] = []): Buffer => {
    const h = Buffer.from(json, 'utf8'), n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([n, h, Buffer.from(data)]);
  };
  const f32 = (offs: string, shape = '[2]') => `{"x":{"dtype":"F32","shape":${shape},"data_offsets":${offs}}}`;
  const cases: [string, Buffer, RegExp][] = [
    ['empty file', Buffer.alloc(0), /truncated header \(file has 0 bytes/],
    ['5-byte file', Buffer.from([1, 2, 3, 4, 5]), /truncated header \(file has 5 bytes/],
    ['header length beyond file size', PY_FILE.subarray(0, 100), /header length 192 is beyond the file size \(100 bytes/],
    ['huge header length', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x7b]), /header length \d+ is beyond the file size/],
    ['data truncated', PY_FILE.subarray(0, PY_FILE.length - 3), /data_offsets \[16, 28\] of tensor 'b' lie outside the data section \(27 bytes/],
    ['not JSON', hdr('{"x": nope}'), /header is not valid JSON/],
    ['not an object start', hdr('[1, 2]'), /does not start with "\{"/],
    ['unknown dtype', hdr('{"x":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /tensor 'x' has unknown dtype 'F33'/],
    ['unsupported dtype', hdr('{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]), /dtype F64, which dd2 does not read/],
    ['shape/size mismatch', hdr(f32('[0,8]', '[3]'), [0, 0, 0, 0, 0, 0, 0, 0]), /'x' \(F32, shape \[3\]\) needs 12 bytes, its data_offsets \[0, 8\] hold 8/],
    ['bad shape', hdr(f32('[0,8]', '[-2]'), [0, 0, 0, 0, 0, 0, 0, 0]), /invalid shape \[-2\]/],
    ['reversed offsets', hdr(f32('[8,0]'), [0, 0, 0, 0, 0, 0, 0, 0]), /invalid data_offsets \[8,0\]/],
    ['hole before the data', hdr(f32('[4,12]'), new Array(12).fill(0)), /starts at data offset 4, expected 0/],
    ['trailing bytes', hdr(f32('[0,8]'), new Array(9).fill(0)), /cover 8 bytes of a 9-byte data section/],
    ['metadata not strings', hdr('{"__metadata__":{"a":1}}'), /metadata 'a' is not a string/],
  ];
  for (const [what, bytes, re] of cases) {
    writeFileSync(p, bytes);
    t.throws(() => readSafetensors(p), { message: re }, what);
    t.throws(() => readSafetensors(p), { message: new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) }, `${what}: names the file`);
  }
  t.throws(() => readSafetensors(join(dir, 'missing.safetensors')), /cannot read .*missing\.safetensors/, 'missing file');
});

t.test('the writer rejects inconsistent arrays', async (t) => {
  const p = join(t.testdir(), 'w.safetensors');
  const one = (a: Partial<NamedArray>): Map<string, NamedArray> => new Map([['x', a as NamedArray]]);
  t.throws(() => writeSafetensors(p, one({ dtype: 'F32', shape: [3], data: new Float32Array(2) })), /'x': shape \[3\] has 3 elements, data has 2/);
  t.throws(() => writeSafetensors(p, one({ dtype: 'F32', shape: [2], data: new Int32Array(2) })), /F32 data must be a Float32Array, got Int32Array/);
  t.throws(() => writeSafetensors(p, one({ dtype: 'F64' as 'F32', shape: [1], data: new Float32Array(1) })), /dtype 'F64' is not one of/);
  t.throws(() => writeSafetensors(p, one({ dtype: 'U8', shape: [1.5], data: new Uint8Array(1) })), /shape \[1.5\] must be a list of integers/);
  writeSafetensors(p, one({ dtype: 'U8', shape: [2], data: Buffer.from([3, 4]) }));
  t.same(Array.from(readSafetensors(p).arrays.get('x')!.data), [3, 4], 'a Buffer is accepted as U8 data');
});

t.test('bf16 conversion rounds to nearest even', async (t) => {
  const one = 1, ulp = 2 ** -7;   // bf16 has 8 significant bits
  const x = new Float32Array([one, one + ulp / 2, one + (3 * ulp) / 2, one + ulp / 2 + 2 ** -20, -2.5, 3.4028234663852886e38, NaN, -0]);
  const h = f32ToBf16(x);
  t.same(Array.from(h.slice(0, 6)), [0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xc020, 0x7f80],
    'exact, tie to even (down), tie to even (up), above tie, negative, overflow to inf');
  t.ok(Number.isNaN(bf16ToF32(h)[6]), 'NaN stays NaN');
  t.ok(Object.is(bf16ToF32(h)[7], -0), '-0 stays -0');
  t.same(Array.from(bf16ToF32(new Uint16Array([0x3f80, 0xc020]))), [1, -2.5]);
});

function pythonWith(mods: string): string | null {
  const py = process.env.DD2_PYTHON ?? 'python3';
  const r = spawnSync(py, ['-c', `import ${mods}`], { encoding: 'utf8' });
  return r.status === 0 ? py : null;
}

const py = pythonWith('numpy, safetensors');
t.test('live interop with the Python safetensors library', { skip: py ? false : 'no python with numpy + safetensors (set DD2_PYTHON)' }, async (t) => {
  const dir = t.testdir();
  const ours = join(dir, 'ours.safetensors'), theirs = join(dir, 'theirs.safetensors');
  const arrays = sample();
  arrays.delete('half');   // numpy has no bfloat16
  writeSafetensors(ours, arrays, { who: 'dd2' });
  const script = `
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
d = load_file(sys.argv[1])
with safe_open(sys.argv[1], 'np') as f: meta = f.metadata()
assert meta == {'who': 'dd2'}, meta
f = np.array([0, -0.0, 1.5, -3.25e-38, 3.4028234663852886e38, 1.401298464324817e-45, np.inf, -np.inf, np.nan, np.pi], np.float32).reshape(2, 5)
assert d['weights.f32'].dtype == np.float32 and np.array_equal(d['weights.f32'], f, equal_nan=True)
assert np.array_equal(d['ints'], np.array([-2**31, -1, 0, 1, 2**31 - 1], np.int32)) and d['ints'].dtype == np.int32
assert d['bytes'].shape == (3, 1, 2) and d['bytes'].dtype == np.uint8 and list(d['bytes'].ravel()) == [0, 1, 127, 128, 254, 255]
assert d['empty'].shape == (0, 3) and d['scalar'].shape == () and int(d['scalar']) == 42
save_file({'m': np.arange(12, dtype=np.float32).reshape(3, 4) / 8, 'i': np.array([7, -9], np.int64), 'h': np.array([0.25], np.float16)},
          sys.argv[2], metadata={'from': 'python'})
print('ok')
`;
  const r = spawnSync(py!, ['-c', script, ours, theirs], { encoding: 'utf8' });
  t.equal(r.status, 0, `python read dd2's file: ${r.stdout}${r.stderr}`);
  const back = readSafetensors(theirs);
  t.same(back.metadata, { from: 'python' });
  t.same(back.arrays.get('m'), { dtype: 'F32', shape: [3, 4], data: new Float32Array(12).map((_, i) => i / 8) });
  t.same(back.arrays.get('i'), { dtype: 'I32', shape: [2], data: new Int32Array([7, -9]) });
  t.same(back.arrays.get('h'), { dtype: 'F32', shape: [1], data: new Float32Array([0.25]) });
});
