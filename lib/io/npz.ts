// NumPy .npy (format 1.0, C order) and .npz (a zip of .npy files, stored or deflated), as np.save,
// np.savez and np.savez_compressed write them and np.load reads them. Writes are deterministic (fixed
// zip timestamps) and atomic. Reads accept format 1.0-3.0, both byte orders, Fortran order, stored or
// deflated members and zip64 records; integer and half types are widened or range-checked into the
// four dd2 dtypes. Archives over 4 GiB (which need zip64 when written) are not written.
import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { writeFileAtomic } from './atomic.js';
import { f16ToF32 } from './safetensors.js';

export type NpyDType = 'uint8' | 'int32' | 'float32' | 'float64';
export type NpyData = Uint8Array | Int32Array | Float32Array | Float64Array;
export interface NpyArray { dtype: NpyDType; shape: number[]; data: NpyData }
export interface NpyInput { dtype: NpyDType; shape: number[]; data: ArrayBufferView }

const DESCR: Record<NpyDType, string> = { uint8: '|u1', int32: '<i4', float32: '<f4', float64: '<f8' };
const CTOR = { uint8: Uint8Array, int32: Int32Array, float32: Float32Array, float64: Float64Array } as const;
const ITEM: Record<NpyDType, number> = { uint8: 1, int32: 4, float32: 4, float64: 8 };

// ---- CRC-32 (zlib.crc32 exists from Node 20.15; the table version covers older runtimes) ----
let table: Uint32Array | null = null;
function crc32Table(buf: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = table[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
type Crc = (b: Uint8Array) => number;
const zcrc = (zlib as unknown as { crc32?: Crc }).crc32;
export const crc32: Crc = typeof zcrc === 'function' ? (b) => zcrc(b) >>> 0 : crc32Table;
export const crc32Portable: Crc = crc32Table;

// ---- .npy ----
function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** One .npy file (format 1.0, header padded to a multiple of 64 bytes). */
export function encodeNpy(name: string, a: NpyInput): Uint8Array[] {
  const where = `dd2: writeNpz: array '${name}'`;
  if (!(a.dtype in DESCR)) throw new TypeError(`${where}: dtype '${a.dtype}' is not one of ${Object.keys(DESCR).join(', ')}`);
  if (!Array.isArray(a.shape) || !a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new RangeError(`${where}: shape ${JSON.stringify(a.shape)} must be a list of integers >= 0`);
  }
  const d = a.data;
  const raw = d instanceof Uint8Array || d instanceof DataView;
  if (!ArrayBuffer.isView(d) || !(raw || d instanceof CTOR[a.dtype])) {
    throw new TypeError(`${where}: ${a.dtype} data must be a ${CTOR[a.dtype].name} (or raw bytes), got ${d?.constructor?.name}`);
  }
  const want = numel(a.shape) * ITEM[a.dtype];
  if (d.byteLength !== want) {
    throw new RangeError(`${where}: shape [${a.shape.join(', ')}] of ${a.dtype} needs ${want} bytes, data has ${d.byteLength}`);
  }
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '${DESCR[a.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  if (header.length > 65535) throw new RangeError(`${where}: the .npy header is too long for format 1.0`);
  const head = Buffer.alloc(10 + header.length);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  head.write(header, 10, 'latin1');
  return [head, new Uint8Array(d.buffer, d.byteOffset, d.byteLength)];
}

interface Reader { size: number; get(dv: DataView, off: number, le: boolean): number }
const READERS: Record<string, Reader & { out: NpyDType; check?: [number, number] }> = {
  b1: { size: 1, out: 'uint8', get: (v, o) => v.getUint8(o) },
  u1: { size: 1, out: 'uint8', get: (v, o) => v.getUint8(o) },
  i1: { size: 1, out: 'int32', get: (v, o) => v.getInt8(o) },
  i2: { size: 2, out: 'int32', get: (v, o, le) => v.getInt16(o, le) },
  u2: { size: 2, out: 'int32', get: (v, o, le) => v.getUint16(o, le) },
  i4: { size: 4, out: 'int32', get: (v, o, le) => v.getInt32(o, le) },
  u4: { size: 4, out: 'int32', get: (v, o, le) => v.getUint32(o, le), check: [0, 2 ** 31 - 1] },
  i8: { size: 8, out: 'int32', get: (v, o, le) => Number(v.getBigInt64(o, le)), check: [-(2 ** 31), 2 ** 31 - 1] },
  u8: { size: 8, out: 'int32', get: (v, o, le) => Number(v.getBigUint64(o, le)), check: [0, 2 ** 31 - 1] },
  f2: { size: 2, out: 'float32', get: (v, o, le) => f16ToF32(v.getUint16(o, le)) },
  f4: { size: 4, out: 'float32', get: (v, o, le) => v.getFloat32(o, le) },
  f8: { size: 8, out: 'float64', get: (v, o, le) => v.getFloat64(o, le) },
};

/** C-order copy of a Fortran-order array (element (i0..in) at sum i_k * prod(shape[<k])). */
function fromFortran<T extends NpyData>(src: T, shape: number[]): T {
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const r = shape.length, idx = new Array(r).fill(0), fstride = new Array(r);
  for (let k = 0, s = 1; k < r; k++) { fstride[k] = s; s *= shape[k]; }
  for (let c = 0; c < src.length; c++) {
    let f = 0;
    for (let k = 0; k < r; k++) f += idx[k] * fstride[k];
    out[c] = src[f];
    for (let k = r - 1; k >= 0; k--) { if (++idx[k] < shape[k]) break; idx[k] = 0; }
  }
  return out;
}

/** Parses a .npy file (`where` names it in errors). */
export function decodeNpy(buf: Uint8Array, where: string): NpyArray {
  const bad = (msg: string): Error => new Error(`dd2: ${where}: not a valid .npy file: ${msg}`);
  if (buf.length < 10 || Buffer.from(buf.subarray(0, 6)).toString('latin1') !== '\x93NUMPY') throw bad('no \\x93NUMPY magic');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const major = buf[6];
  if (major < 1 || major > 3) throw bad(`format version ${major}.${buf[7]} is not 1, 2 or 3`);
  const hstart = major === 1 ? 10 : 12;
  if (buf.length < hstart) throw bad('truncated header');
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  if (hstart + hlen > buf.length) throw bad(`header length ${hlen} is beyond the data (${buf.length} bytes)`);
  const header = Buffer.from(buf.subarray(hstart, hstart + hlen)).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(`cannot parse header ${header.trim()}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`invalid shape (${shapeText})`);
  const m = /^([<>|=]?)([a-z]\d+)$/.exec(descr);
  const rd = m ? READERS[m[2]] : undefined;
  if (!m || !rd) throw new TypeError(`dd2: ${where}: dtype '${descr}' is not supported (bool, u1, i1-i8, u2-u8, f2, f4, f8)`);
  const le = m[1] !== '>';
  const n = numel(shape), start = hstart + hlen;
  if (buf.length - start !== n * rd.size) {
    throw bad(`shape (${shape.join(', ')}) of '${descr}' needs ${n * rd.size} data bytes, the file has ${buf.length - start}`);
  }
  let data: NpyData;
  if (le && (m[2] === 'u1' || m[2] === 'b1' || m[2] === 'i4' || m[2] === 'f4' || m[2] === 'f8')) {
    const copy = new ArrayBuffer(n * rd.size);
    new Uint8Array(copy).set(buf.subarray(start));
    data = new CTOR[rd.out](copy);
  } else {
    data = new CTOR[rd.out](n);
    for (let i = 0; i < n; i++) {
      const v = rd.get(dv, start + i * rd.size, le);
      if (rd.check && !(v >= rd.check[0] && v <= rd.check[1])) {
        throw new RangeError(`dd2: ${where}: value ${v} at index ${i} does not fit int32 ('${descr}' is read as int32)`);
      }
      data[i] = v;
    }
  }
  if (fortran === 'True' && shape.length > 1) data = fromFortran(data, shape);
  return { dtype: rd.out, shape, data };
}

// ---- zip ----
const DOS_DATE = (0 << 9) | (1 << 5) | 1;   // 1980-01-01, so equal arrays give equal bytes
const LIMIT = 0xffffffff;

/** Writes an .npz atomically; compress: deflate every member (np.savez_compressed), else stored (np.savez). */
export function writeNpz(path: string, arrays: Record<string, NpyInput>, opts: { compress?: boolean } = {}): void {
  writeFileAtomic(path, encodeNpz(arrays, opts));
}

export function encodeNpz(arrays: Record<string, NpyInput>, opts: { compress?: boolean } = {}): Uint8Array[] {
  const chunks: Uint8Array[] = [], central: Uint8Array[] = [];
  let offset = 0;
  const names = Object.keys(arrays);
  if (names.length > 0xffff) throw new RangeError(`dd2: writeNpz: ${names.length} arrays exceed the zip limit of 65535`);
  for (const key of names) {
    if (!key) throw new RangeError('dd2: writeNpz: array names must be non-empty');
    const parts = encodeNpy(key, arrays[key]);
    const npy = Buffer.concat(parts);
    const crc = crc32(npy);
    const body = opts.compress ? zlib.deflateRawSync(npy) : npy;
    const method = opts.compress ? 8 : 0;
    const name = Buffer.from(`${key}.npy`, 'utf8');
    const flags = /^[\x20-\x7e]*$/.test(key) ? 0 : 0x800;   // bit 11: UTF-8 name
    if (offset + 30 + name.length + body.length >= LIMIT || npy.length >= LIMIT) {
      throw new RangeError('dd2: writeNpz: archives over 4 GiB (zip64) are not supported; write several files');
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8); local.writeUInt16LE(0, 10); local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14); local.writeUInt32LE(body.length, 18); local.writeUInt32LE(npy.length, 22);
    local.writeUInt16LE(name.length, 26); local.writeUInt16LE(0, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0); cd.writeUInt16LE(20, 4); cd.writeUInt16LE(20, 6); cd.writeUInt16LE(flags, 8);
    cd.writeUInt16LE(method, 10); cd.writeUInt16LE(0, 12); cd.writeUInt16LE(DOS_DATE, 14);
    cd.writeUInt32LE(crc, 16); cd.writeUInt32LE(body.length, 20); cd.writeUInt32LE(npy.length, 24);
    cd.writeUInt16LE(name.length, 28); cd.writeUInt32LE(0o644 << 16, 38); cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    chunks.push(local, name, body);
    offset += 30 + name.length + body.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  if (offset + cdSize + 22 >= LIMIT) throw new RangeError('dd2: writeNpz: archives over 4 GiB (zip64) are not supported');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(names.length, 8); end.writeUInt16LE(names.length, 10);
  end.writeUInt32LE(cdSize, 12); end.writeUInt32LE(offset, 16);
  return [...chunks, ...central, end];
}

interface ZipEntry { name: string; method: number; crc: number; csize: number; usize: number; offset: number }

/** The central directory of a zip (zip64 records understood). */
export function zipEntries(buf: Buffer, where: string): ZipEntry[] {
  const bad = (msg: string): Error => new Error(`dd2: ${where}: not a valid .npz (zip) file: ${msg}`);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw bad('no end-of-central-directory record (truncated?)');
  let count = buf.readUInt16LE(eocd + 10), cdSize = buf.readUInt32LE(eocd + 12), cdOff = buf.readUInt32LE(eocd + 16);
  if ((count === 0xffff || cdOff === LIMIT || cdSize === LIMIT) && eocd >= 20 && buf.readUInt32LE(eocd - 20) === 0x07064b50) {
    const z = Number(buf.readBigUInt64LE(eocd - 12));
    if (z + 56 > buf.length || buf.readUInt32LE(z) !== 0x06064b50) throw bad('broken zip64 end record');
    count = Number(buf.readBigUInt64LE(z + 32)); cdSize = Number(buf.readBigUInt64LE(z + 40)); cdOff = Number(buf.readBigUInt64LE(z + 48));
  }
  if (cdOff + cdSize > buf.length) throw bad(`central directory [${cdOff}, ${cdOff + cdSize}) beyond the file (${buf.length} bytes)`);
  const out: ZipEntry[] = [];
  for (let i = 0, p = cdOff; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw bad(`central directory entry ${i} is damaged`);
    const nlen = buf.readUInt16LE(p + 28), xlen = buf.readUInt16LE(p + 30), clen = buf.readUInt16LE(p + 32);
    const e: ZipEntry = {
      name: buf.toString('utf8', p + 46, p + 46 + nlen), method: buf.readUInt16LE(p + 10), crc: buf.readUInt32LE(p + 16),
      csize: buf.readUInt32LE(p + 20), usize: buf.readUInt32LE(p + 24), offset: buf.readUInt32LE(p + 42),
    };
    for (let x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {   // zip64 extra: the 0xffffffff fields, in order
      const id = buf.readUInt16LE(x), sz = buf.readUInt16LE(x + 2);
      if (id === 1) {
        let q = x + 4;
        if (e.usize === LIMIT) { e.usize = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (e.csize === LIMIT) { e.csize = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (e.offset === LIMIT) e.offset = Number(buf.readBigUInt64LE(q));
      }
      x += 4 + sz;
    }
    out.push(e);
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

function memberBytes(buf: Buffer, e: ZipEntry, where: string): Buffer {
  const bad = (msg: string): Error => new Error(`dd2: ${where}: member '${e.name}': ${msg}`);
  if (e.offset + 30 > buf.length || buf.readUInt32LE(e.offset) !== 0x04034b50) throw bad('local header missing (damaged file)');
  const start = e.offset + 30 + buf.readUInt16LE(e.offset + 26) + buf.readUInt16LE(e.offset + 28);
  if (start + e.csize > buf.length) throw bad(`data [${start}, ${start + e.csize}) beyond the file (${buf.length} bytes; truncated?)`);
  const body = buf.subarray(start, start + e.csize);
  let data: Buffer;
  if (e.method === 0) data = body;
  else if (e.method === 8) {
    try { data = zlib.inflateRawSync(body); } catch (err) { throw bad(`cannot inflate (${(err as Error).message})`); }
  } else throw bad(`compression method ${e.method} is not supported (stored or deflated only)`);
  if (data.length !== e.usize) throw bad(`size ${data.length} differs from the directory's ${e.usize}`);
  const crc = crc32(data);
  if (crc !== e.crc) throw bad(`CRC-32 ${crc.toString(16)} differs from the directory's ${e.crc.toString(16)} (corrupt)`);
  return data;
}

/** Reads an .npz: one entry per member, named without the '.npy' suffix. */
export function readNpz(path: string): Record<string, NpyArray> {
  let buf: Buffer;
  try { buf = readFileSync(path); } catch (e) { throw new Error(`dd2: cannot read ${path}: ${(e as Error).message}`); }
  const out: Record<string, NpyArray> = {};
  for (const e of zipEntries(buf, path)) {
    if (e.name.endsWith('/')) continue;
    out[e.name.replace(/\.npy$/, '')] = decodeNpy(memberBytes(buf, e, path), `${path}:${e.name}`);
  }
  return out;
}
