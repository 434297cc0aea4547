// Reading a file of generated samples for `dd2 eval --samples`. Two layouts are accepted:
// - dd2's own (what `dd2 sample` writes): images uint8 (n, H, W, C), labels int32 (n), tokens int32 (n, N);
// - the ADM / guided-diffusion layout: arr_0 uint8 (n, H, W, C) (or (n, H, W) for grayscale), optional
//   arr_1 class labels (n) (numpy writes them as int64; they are read as int32).
// Letters: n images, H height, W width, C channels (1 or 3), N tokens per image.
import { existsSync } from 'node:fs';
import { readNpz, type NpyArray } from '../io/npz.js';

export interface SampleSet {
  path: string;
  /** 'dd2' (images/labels/tokens) or 'adm' (arr_0/arr_1) */
  layout: 'dd2' | 'adm';
  n: number;
  height: number;
  width: number;
  channels: number;
  /** uint8 NHWC, n*H*W*C */
  images: Uint8Array;
  /** the requested class of each image, or null when the file has none */
  labels: Int32Array | null;
  /** token indices (n, N) when the file has them (continuous 'latents' of a DD2 generator are not read) */
  tokens: Int32Array | null;
}

function imagesOf(a: NpyArray, key: string, path: string): { n: number; height: number; width: number; channels: number; images: Uint8Array } {
  const where = `${path}: '${key}'`;
  if (a.dtype !== 'uint8') {
    throw new Error(`dd2: ${where} holds ${a.dtype} values; expected uint8 images in 0..255 (n, H, W, C)`);
  }
  const s = a.shape;
  if (s.length === 3) return { n: s[0], height: s[1], width: s[2], channels: 1, images: a.data as Uint8Array };
  if (s.length !== 4) throw new Error(`dd2: ${where} has shape (${s.join(', ')}); expected (n, H, W, C) or (n, H, W)`);
  if (s[3] !== 1 && s[3] !== 3) {
    const hint = s[1] === 1 || s[1] === 3 ? ' (it looks like NCHW; store images channels-last, NHWC)' : '';
    throw new Error(`dd2: ${where} has shape (${s.join(', ')}); expected (n, H, W, C) with C = 1 or 3${hint}`);
  }
  return { n: s[0], height: s[1], width: s[2], channels: s[3], images: a.data as Uint8Array };
}

function labelsOf(a: NpyArray | undefined, key: string, n: number, path: string): Int32Array | null {
  if (!a) return null;
  if (a.dtype !== 'int32' && a.dtype !== 'uint8') {
    throw new Error(`dd2: ${path}: '${key}' holds ${a.dtype} values; expected integer class labels (n)`);
  }
  if (a.shape.length !== 1 || a.shape[0] !== n) {
    throw new Error(`dd2: ${path}: '${key}' has shape (${a.shape.join(', ')}); expected (${n}), one label per image`);
  }
  const labels = a.data instanceof Int32Array ? a.data : Int32Array.from(a.data as Uint8Array);
  const bad = labels.findIndex((l) => l < 0);
  if (bad >= 0) throw new Error(`dd2: ${path}: '${key}'[${bad}] = ${labels[bad]} is not a class label (>= 0)`);
  return labels;
}

/** Reads a samples .npz in dd2's layout or the ADM layout; every error names the file and the key. */
export function readSamplesNpz(path: string): SampleSet {
  if (!existsSync(path)) throw new Error(`dd2: --samples: ${path} does not exist`);
  const z = readNpz(path);
  const keys = Object.keys(z);
  let layout: 'dd2' | 'adm', imgKey: string, labKey: string;
  if (z.images) { layout = 'dd2'; imgKey = 'images'; labKey = 'labels'; }
  else if (z.arr_0) { layout = 'adm'; imgKey = 'arr_0'; labKey = 'arr_1'; }
  else {
    throw new Error(`dd2: ${path} holds [${keys.join(', ')}]; expected 'images' (+ 'labels', 'tokens'), as written by ` +
      "`dd2 sample`, or the ADM layout 'arr_0' (+ 'arr_1' labels)");
  }
  const im = imagesOf(z[imgKey], imgKey, path);
  if (im.n === 0) throw new Error(`dd2: ${path}: '${imgKey}' holds no images`);
  const labels = labelsOf(z[labKey], labKey, im.n, path);
  let tokens: Int32Array | null = null;
  if (layout === 'dd2' && z.tokens) {
    const t = z.tokens;
    if (t.dtype !== 'int32' || t.shape.length < 2 || t.shape[0] !== im.n) {
      throw new Error(`dd2: ${path}: 'tokens' is ${t.dtype} (${t.shape.join(', ')}); expected int32 (${im.n}, N, ...)`);
    }
    tokens = t.data as Int32Array;
  }
  return { path, layout, ...im, labels, tokens };
}
