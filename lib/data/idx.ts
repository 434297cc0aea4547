// IDX reader (the MNIST file format): a big-endian header -- two zero bytes, a type code (0x08 =
// uint8), the number of dimensions -- then one uint32 per dimension, then the row-major data.
// Files may be gzipped (detected by the gzip magic, not the name). Every error names the file.
// Also the loader shared by MNIST and Fashion-MNIST: an images file (N, H, W) plus a labels file (N),
// both checked against recorded SHA-256 digests of their uncompressed content.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { ImageDataset } from './dataset.js';

export interface IdxArray { dims: number[]; data: Uint8Array }

const TYPE_NAMES: Record<number, string> = {
  0x08: 'uint8', 0x09: 'int8', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64',
};

/** Parses an uncompressed IDX buffer holding uint8 data. `name` is used in error messages. */
export function parseIdx(buf: Uint8Array, name: string): IdxArray {
  if (buf.length < 4) throw new Error(`IDX file ${name}: truncated: ${buf.length} bytes, shorter than the 4-byte magic`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    const hex = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    throw new Error(`IDX file ${name}: bad magic 0x${hex} (expected 0x0000TTNN; is it an IDX file?)`);
  }
  const type = buf[2], ndim = buf[3];
  if (!(type in TYPE_NAMES)) throw new Error(`IDX file ${name}: unknown type code 0x${type.toString(16)}`);
  if (type !== 0x08) throw new Error(`IDX file ${name}: element type ${TYPE_NAMES[type]} is not supported (only uint8)`);
  if (ndim < 1) throw new Error(`IDX file ${name}: zero dimensions in the header`);
  const header = 4 + 4 * ndim;
  if (buf.length < header) {
    throw new Error(`IDX file ${name}: truncated: ${buf.length} bytes, shorter than its ${header}-byte header (${ndim} dims)`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let d = 0; d < ndim; d++) {
    dims.push(view.getUint32(4 + 4 * d, false));
    count *= dims[d];
  }
  const have = buf.length - header;
  if (have < count) {
    throw new Error(`IDX file ${name}: truncated: dims [${dims.join(', ')}] need ${count} data bytes after ` +
      `the ${header}-byte header, found ${have}`);
  }
  if (have > count) {
    throw new Error(`IDX file ${name}: ${have - count} unexpected trailing bytes after [${dims.join(', ')}] uint8 data`);
  }
  // A plain Uint8Array view (not a Buffer, whose slice() would alias instead of copy).
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, count) };
}

export function sha256Hex(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Reads an IDX file (gunzipping it if it starts with the gzip magic 1f 8b), verifies the SHA-256 of
 *  the uncompressed bytes when `sha256` is given, and parses it. */
export async function readIdxFile(path: string, sha256?: string): Promise<IdxArray & { sha256: string }> {
  let raw: Uint8Array;
  try {
    raw = await readFile(path);
  } catch (e) {
    throw new Error(`IDX file ${path}: cannot read: ${(e as Error).message}`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (e) {
      throw new Error(`IDX file ${path}: corrupt or truncated gzip data: ${(e as Error).message}`);
    }
  }
  const digest = sha256Hex(raw);
  if (sha256 !== undefined && digest !== sha256) {
    throw new Error(`IDX file ${path}: sha256 mismatch: got ${digest}, expected ${sha256} ` +
      '(the file is corrupt or not the expected release)');
  }
  return { ...parseIdx(raw, path), sha256: digest };
}

export interface IdxPairSpec {
  name: string;
  split: 'train' | 'test';
  imagesPath: string;
  labelsPath: string;
  /** SHA-256 of the uncompressed files; null skips the check */
  imagesSha256: string | null;
  labelsSha256: string | null;
  classNames: string[];
}

/** Loads an images file (N, H, W) and a labels file (N) into a 1-channel ImageDataset. */
export async function loadIdxPair(spec: IdxPairSpec): Promise<ImageDataset> {
  const [img, lab] = await Promise.all([
    readIdxFile(spec.imagesPath, spec.imagesSha256 ?? undefined),
    readIdxFile(spec.labelsPath, spec.labelsSha256 ?? undefined),
  ]);
  if (img.dims.length !== 3) {
    throw new Error(`IDX file ${spec.imagesPath}: expected 3 dims (N, H, W) for images, got [${img.dims.join(', ')}]`);
  }
  if (lab.dims.length !== 1) {
    throw new Error(`IDX file ${spec.labelsPath}: expected 1 dim (N) for labels, got [${lab.dims.join(', ')}]`);
  }
  const [n, height, width] = img.dims;
  if (lab.dims[0] !== n) {
    throw new Error(`IDX files ${spec.imagesPath} and ${spec.labelsPath}: ${n} images but ${lab.dims[0]} labels`);
  }
  const numClasses = spec.classNames.length;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (lab.data[i] >= numClasses) {
      throw new Error(`IDX file ${spec.labelsPath}: label ${lab.data[i]} at index ${i} is not below ${numClasses}`);
    }
    labels[i] = lab.data[i];
  }
  return {
    name: spec.name, split: spec.split, n, height, width, channels: 1, numClasses,
    images: img.data, labels, classNames: [...spec.classNames],
  };
}
