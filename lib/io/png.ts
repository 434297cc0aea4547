// PNG output (pngjs): one grayscale or RGB image from HWC bytes, and a grid of N images (NHWC bytes)
// tiled into rows of `nrow` images with a 2-pixel border, like torchvision's make_grid. Files are
// written atomically; the bytes depend only on the pixels (no timestamps). readPng is the inverse
// (for tests and tools). Letters: N images, H height, W width, C channels (1 or 3).
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { writeFileAtomic } from './atomic.js';

function checkImage(op: string, bytes: number, n: number, height: number, width: number, channels: number): void {
  if (!(Number.isSafeInteger(height) && height > 0 && Number.isSafeInteger(width) && width > 0)) {
    throw new RangeError(`dd2: ${op}: height and width must be positive integers, got ${height}x${width}`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`dd2: ${op}: channels must be 1 or 3, got ${channels}`);
  if (bytes !== n * height * width * channels) {
    throw new RangeError(`dd2: ${op}: ${n}x${height}x${width}x${channels} needs ${n * height * width * channels} bytes, got ${bytes}`);
  }
}

/** PNG bytes of one HWC uint8 image (colour type 0 for 1 channel, 2 for 3). */
export function encodePng(hwc: Uint8Array, height: number, width: number, channels: 1 | 3): Buffer {
  checkImage('writePng', hwc.length, 1, height, width, channels);
  const png = new PNG({ width, height });
  const colorType = channels === 1 ? 0 : 2;
  png.data = Buffer.from(hwc.buffer, hwc.byteOffset, hwc.byteLength);
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8 });
}

/** Writes one HWC uint8 image (grayscale or RGB) as a PNG file, atomically. */
export function writePng(path: string, hwc: Uint8Array, height: number, width: number, channels: 1 | 3): void {
  writeFileAtomic(path, encodePng(hwc, height, width, channels));
}

export interface GridOptions { /** border width in pixels (default 2) */ pad?: number; /** border value (default 255) */ padValue?: number }

/**
 * Tiles N HWC images into rows of `nrow` images (default ceil(sqrt(N))), each surrounded by a `pad`-pixel
 * border; unused cells of the last row are border-coloured. Returns the grid (HWC) and its size.
 */
export function tileGrid(nhwc: Uint8Array, n: number, height: number, width: number, channels: 1 | 3, nrow?: number,
  opts: GridOptions = {}): { data: Uint8Array; height: number; width: number } {
  checkImage('writeGrid', nhwc.length, n, height, width, channels);
  if (!(Number.isSafeInteger(n) && n > 0)) throw new RangeError(`dd2: writeGrid: need at least one image, got n=${n}`);
  const cols = Math.min(n, nrow ?? Math.ceil(Math.sqrt(n)));
  if (!(Number.isSafeInteger(cols) && cols > 0)) throw new RangeError(`dd2: writeGrid: nrow must be a positive integer, got ${nrow}`);
  const pad = opts.pad ?? 2, padValue = opts.padValue ?? 255;
  const rows = Math.ceil(n / cols);
  const gh = rows * (height + pad) + pad, gw = cols * (width + pad) + pad;
  const out = new Uint8Array(gh * gw * channels).fill(padValue);
  const rowBytes = width * channels;
  for (let i = 0; i < n; i++) {
    const y0 = pad + Math.floor(i / cols) * (height + pad), x0 = pad + (i % cols) * (width + pad);
    for (let y = 0; y < height; y++) {
      const src = (i * height + y) * rowBytes;
      out.set(nhwc.subarray(src, src + rowBytes), ((y0 + y) * gw + x0) * channels);
    }
  }
  return { data: out, height: gh, width: gw };
}

/** Writes N NHWC uint8 images as one PNG grid (see tileGrid), atomically. */
export function writeGrid(path: string, nhwc: Uint8Array, n: number, height: number, width: number, channels: 1 | 3,
  nrow?: number, opts: GridOptions = {}): void {
  const g = tileGrid(nhwc, n, height, width, channels, nrow, opts);
  writePng(path, g.data, g.height, g.width, channels);
}

/** Reads a PNG (any colour type pngjs reads) as HWC uint8 with `channels` channels: 1 takes the luma
 *  round(0.299 R + 0.587 G + 0.114 B) (exact for gray images), 3 drops alpha, 4 keeps it. */
export function readPng(path: string, channels: 1 | 3 | 4 = 3): { data: Uint8Array; height: number; width: number; channels: number } {
  let png: { data: Buffer; width: number; height: number };
  try {
    png = PNG.sync.read(readFileSync(path));
  } catch (e) {
    throw new Error(`dd2: cannot read PNG ${path}: ${(e as Error).message}`);
  }
  const n = png.width * png.height, rgba = png.data;
  if (channels === 4) return { data: new Uint8Array(rgba), height: png.height, width: png.width, channels };
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    const r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
    if (channels === 1) out[i] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else { out[3 * i] = r; out[3 * i + 1] = g; out[3 * i + 2] = b; }
  }
  return { data: out, height: png.height, width: png.width, channels };
}
