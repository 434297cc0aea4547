// safetensors files (the Hugging Face format): an 8-byte little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the
// raw little-endian C-order data; offsets count from the start of the data section, which the tensors
// cover without holes. The writer lays tensors out as the Python library does (by element size
// descending, then name; header padded with spaces to a multiple of 8), so its output is byte-identical.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';

export type STDType = 'F32' | 'I32' | 'U8' | 'BF16';
export interface NamedArray {
  dtype: STDType;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array | Uint16Array;
}

type ArrayCtor = typeof Float32Array | typeof Int32Array | typeof Uint8Array | typeof Uint16Array;
const WRITE_DTYPES: Record<STDType, { bytes: number; ctor: ArrayCtor }> = {
  F32: { bytes: 4, ctor: Float32Array }, I32: { bytes: 4, ctor: Int32Array },
  U8: { bytes: 1, ctor: Uint8Array }, BF16: { bytes: 2, ctor: Uint16Array },
};
/** Element sizes of every dtype the format defines (to tell "unknown" from "not supported"). */
const KNOWN_DTYPES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
};
/** Read as is (F32, I32, U8, BF16) or converted: F16 -> F32 (exact), I64 -> I32 (range-checked), BOOL -> U8. */
const READ_DTYPES = new Set(['F32', 'I32', 'U8', 'BF16', 'F16', 'I64', 'BOOL']);
const MAX_HEADER = 100_000_000;   // the Python library's limit

function littleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function validateArray(name: string, a: NamedArray, path: string): void {
  const spec = WRITE_DTYPES[a.dtype];
  const where = `dd2: writeSafetensors ${path}: tensor '${name}'`;
  if (!spec) throw new TypeError(`${where}: dtype '${a.dtype}' is not one of ${Object.keys(WRITE_DTYPES).join(', ')}`);
  if (!(a.data instanceof spec.ctor)) {
    throw new TypeError(`${where}: ${a.dtype} data must be a ${spec.ctor.name}, got ${a.data?.constructor.name}`);
  }
  if (!Array.isArray(a.shape) || !a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new RangeError(`${where}: shape ${JSON.stringify(a.shape)} must be a list of integers >= 0`);
  }
  if (numel(a.shape) !== a.data.length) {
    throw new RangeError(`${where}: shape [${a.shape.join(', ')}] has ${numel(a.shape)} elements, data has ${a.data.length}`);
  }
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The header bytes (length prefix + padded JSON) and the data chunks of a safetensors file. */
export function encodeSafetensors(arrays: ReadonlyMap<string, NamedArray>, metadata?: Record<string, string>,
  path = '<memory>'): Uint8Array[] {
  if (!littleEndianHost()) throw new Error('dd2: safetensors: big-endian hosts are not supported');
  const names = [...arrays.keys()];
  for (const n of names) {
    if (n === '__metadata__' || n.length === 0) throw new RangeError(`dd2: writeSafetensors ${path}: invalid tensor name '${n}'`);
    validateArray(n, arrays.get(n)!, path);
  }
  names.sort((a, b) => WRITE_DTYPES[arrays.get(b)!.dtype].bytes - WRITE_DTYPES[arrays.get(a)!.dtype].bytes || byteCompare(a, b));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    const meta: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort(byteCompare)) {
      if (typeof metadata[k] !== 'string') throw new TypeError(`dd2: writeSafetensors ${path}: metadata '${k}' must be a string`);
      meta[k] = metadata[k];
    }
    header.__metadata__ = meta;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const n of names) {
    const a = arrays.get(n)!;
    const bytes = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
    header[n] = { dtype: a.dtype, shape: a.shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (len % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json, 'utf8'));
  head.writeBigUInt64LE(BigInt(head.length - 8), 0);
  head.write(json, 8, 'utf8');
  return [head, ...chunks];
}

/** Writes a safetensors file atomically (temporary file in the same folder, fsync, rename). */
export function writeSafetensors(path: string, arrays: Map<string, NamedArray>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(arrays, metadata, path));
}

interface Entry { name: string; dtype: string; shape: number[]; begin: number; end: number }

function parseHeader(buf: Uint8Array, path: string): { entries: Entry[]; metadata: Record<string, string>; dataStart: number } {
  const bad = (msg: string): Error => new Error(`dd2: ${path}: not a valid safetensors file: ${msg}`);
  if (buf.byteLength < 8) throw bad(`truncated header (file has ${buf.byteLength} bytes, the length prefix needs 8)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(buf.byteLength - 8)) {
    throw bad(`header length ${n} is beyond the file size (${buf.byteLength} bytes; file truncated or not safetensors)`);
  }
  if (n > BigInt(MAX_HEADER)) throw bad(`header length ${n} exceeds ${MAX_HEADER} bytes`);
  const hlen = Number(n);
  const text = Buffer.from(buf.buffer, buf.byteOffset + 8, hlen).toString('utf8');
  if (!text.startsWith('{')) throw bad('the header does not start with "{"');
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { throw bad(`the header is not valid JSON (${(e as Error).message})`); }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('"__metadata__" is not an object');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw bad(`metadata '${k}' is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    const info = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) throw bad(`tensor '${name}' has no description`);
    const { dtype, shape, data_offsets: off } = info;
    if (typeof dtype !== 'string') throw bad(`tensor '${name}' has no dtype`);
    if (!(dtype in KNOWN_DTYPES)) throw bad(`tensor '${name}' has unknown dtype '${dtype}'`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor '${name}' has invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      throw bad(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin: off[0], end: off[1] });
  }
  return { entries, metadata, dataStart: 8 + hlen };
}

function checkLayout(entries: Entry[], dataBytes: number, path: string): void {
  const bad = (msg: string): Error => new Error(`dd2: ${path}: not a valid safetensors file: ${msg}`);
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.end > dataBytes) {
      throw bad(`data_offsets [${e.begin}, ${e.end}] of tensor '${e.name}' lie outside the data section ` +
        `(${dataBytes} bytes; file truncated?)`);
    }
    const want = numel(e.shape) * KNOWN_DTYPES[e.dtype];
    if (e.end - e.begin !== want) {
      throw bad(`tensor '${e.name}' (${e.dtype}, shape [${e.shape.join(', ')}]) needs ${want} bytes, ` +
        `its data_offsets [${e.begin}, ${e.end}] hold ${e.end - e.begin}`);
    }
    if (e.begin !== at) {
      throw bad(`tensor '${e.name}' starts at data offset ${e.begin}, expected ${at} (holes or overlaps in the data)`);
    }
    at = e.end;
  }
  if (at !== dataBytes) throw bad(`the tensors cover ${at} bytes of a ${dataBytes}-byte data section (trailing bytes)`);
}

function bytesAt(buf: Uint8Array, start: number, len: number): ArrayBuffer {
  const out = new ArrayBuffer(len);   // a copy: aligned, and independent of the file buffer
  new Uint8Array(out).set(buf.subarray(start, start + len));
  return out;
}

/** f16 bit pattern -> float32 value (exact). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decode(e: Entry, raw: ArrayBuffer, path: string): NamedArray {
  const shape = e.shape;
  switch (e.dtype) {
    case 'F32': return { dtype: 'F32', shape, data: new Float32Array(raw) };
    case 'I32': return { dtype: 'I32', shape, data: new Int32Array(raw) };
    case 'U8': case 'BOOL': return { dtype: 'U8', shape, data: new Uint8Array(raw) };
    case 'BF16': return { dtype: 'BF16', shape, data: new Uint16Array(raw) };
    case 'F16': return { dtype: 'F32', shape, data: Float32Array.from(new Uint16Array(raw), f16ToF32) };
    case 'I64': {
      const src = new BigInt64Array(raw), out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v < -2147483648n || v > 2147483647n) {
          throw new RangeError(`dd2: ${path}: I64 tensor '${e.name}' holds ${v} at index ${i}, outside the int32 range dd2 reads`);
        }
        out[i] = Number(v);
      }
      return { dtype: 'I32', shape, data: out };
    }
    default:
      throw new TypeError(`dd2: ${path}: tensor '${e.name}' has dtype ${e.dtype}, which dd2 does not read ` +
        `(supported: ${[...READ_DTYPES].join(', ')})`);
  }
}

/** Parses safetensors bytes (`path` names the source in errors). */
export function decodeSafetensors(buf: Uint8Array, path = '<memory>'): { arrays: Map<string, NamedArray>; metadata: Record<string, string> } {
  if (!littleEndianHost()) throw new Error('dd2: safetensors: big-endian hosts are not supported');
  const { entries, metadata, dataStart } = parseHeader(buf, path);
  checkLayout(entries, buf.byteLength - dataStart, path);
  const arrays = new Map<string, NamedArray>();
  for (const e of entries) arrays.set(e.name, decode(e, bytesAt(buf, dataStart + e.begin, e.end - e.begin), path));
  return { arrays, metadata };
}

/**
 * Reads a safetensors file. F32, I32, U8 and BF16 come back as stored; F16 is widened to F32, I64 narrowed
 * to I32 (an error if a value does not fit) and BOOL read as U8. Errors name the file.
 */
export function readSafetensors(path: string): { arrays: Map<string, NamedArray>; metadata: Record<string, string> } {
  let buf: Buffer;
  try { buf = readFileSync(path); } catch (e) { throw new Error(`dd2: cannot read ${path}: ${(e as Error).message}`); }
  return decodeSafetensors(buf, path);
}

/** float32 values -> bf16 bit patterns, rounding to nearest even (NaN stays a quiet NaN). */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length), out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    if ((b & 0x7fffffff) > 0x7f800000) { out[i] = (b >>> 16) | 0x40; continue; }
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bf16 bit patterns -> float32 values (exact). */
export function bf16ToF32(h: Uint16Array): Float32Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}

/** Any NamedArray as float32 values (BF16 widened, integers converted). */
export function toFloat32(a: NamedArray): Float32Array {
  if (a.dtype === 'F32') return a.data as Float32Array;
  if (a.dtype === 'BF16') return bf16ToF32(a.data as Uint16Array);
  return Float32Array.from(a.data as Int32Array | Uint8Array);
}
