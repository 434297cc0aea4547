// A folder of PNG images as an ImageDataset (decoded with pngjs). Layouts:
//   root/<class>/*.png            labelled: classes sorted by name (code points), label = index
//   root/*.png                    unlabelled: labels null, numClasses 0
//   root/train/..., root/test/... either layout per split, the split chosen by the folder; the
//                                 class list comes from train/ and test/ may not add classes
// Without train/ and test/ folders the split is a hashed holdout: a file is in 'test' when the FNV-1a
// hash of its path relative to root (e.g. 'cat/001.png') is 0 mod 10 (about 10%, stable as files are
// added). Only *.png files are read; hidden and other files are ignored. Alpha is composited over
// black. Channels: opts.channels, else the majority over all files of the folder (gray = PNG colour
// types 0/4; RGB = 2/3/6; a tie gives RGB); gray -> RGB replicates, RGB -> gray takes the 601 luma.
// With opts.size, non-square images are centre-cropped to a square, then resized (resize.ts);
// without it, all images must share one size.
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PNG } from 'pngjs';
import type { ImageDataset } from './dataset.js';
import { centerCropSquare, convertChannels, resizeImage } from './resize.js';

export interface FolderOptions { size?: number; limit?: number; channels?: 1 | 3 }

interface FileEntry { path: string; rel: string; label: number }
interface Scan { classes: string[] | null; files: FileEntry[] }

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const isPng = (name: string): boolean => name.toLowerCase().endsWith('.png') && !name.startsWith('.');

/** 32-bit FNV-1a of a string's UTF-8 bytes. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Whether a file (path relative to the root, '/'-separated) is in the hashed test holdout. */
export function inHashedTestSplit(rel: string): boolean {
  return fnv1a(rel) % 10 === 0;
}

async function listDir(dir: string): Promise<{ dirs: string[]; pngs: string[] }> {
  const entries = await readdir(dir, { withFileTypes: true });
  const dirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(byCodePoint);
  const pngs = entries.filter((e) => e.isFile() && isPng(e.name)).map((e) => e.name).sort(byCodePoint);
  return { dirs, pngs };
}

/** Files of one layout root: either PNGs directly (unlabelled) or one sub-folder of PNGs per class. */
async function scanLayout(dir: string, relPrefix: string): Promise<Scan> {
  const { dirs, pngs } = await listDir(dir);
  if (pngs.length && dirs.length) {
    throw new Error(`image folder ${dir}: holds both PNG files and sub-folders (${dirs.slice(0, 3).join(', ')}); ` +
      'use either one sub-folder per class or PNG files only');
  }
  if (pngs.length) return { classes: null, files: pngs.map((f) => ({ path: join(dir, f), rel: relPrefix + f, label: -1 })) };
  if (!dirs.length) throw new Error(`image folder ${dir}: no PNG files and no class sub-folders`);
  const files: FileEntry[] = [];
  for (let c = 0; c < dirs.length; c++) {
    const inner = (await listDir(join(dir, dirs[c]))).pngs;
    if (!inner.length) throw new Error(`image folder ${join(dir, dirs[c])}: class folder holds no PNG files`);
    for (const f of inner) files.push({ path: join(dir, dirs[c], f), rel: `${relPrefix}${dirs[c]}/${f}`, label: c });
  }
  return { classes: dirs, files };
}

/** The files of both splits and the class list, following the layouts above. */
async function scanFolder(root: string): Promise<{ classes: string[] | null; train: FileEntry[]; test: FileEntry[] }> {
  let st;
  try {
    st = await stat(root);
  } catch {
    throw new Error(`image folder ${root}: not found`);
  }
  if (!st.isDirectory()) throw new Error(`image folder ${root}: not a directory`);
  const { dirs, pngs } = await listDir(root);
  if (!pngs.length && dirs.includes('train') && dirs.includes('test')) {
    const train = await scanLayout(join(root, 'train'), 'train/');
    const test = await scanLayout(join(root, 'test'), 'test/');
    if ((train.classes === null) !== (test.classes === null)) {
      throw new Error(`image folder ${root}: train/ and test/ must both have class sub-folders or both have none`);
    }
    if (train.classes && test.classes) {
      const trainClasses = train.classes;
      for (const f of test.files) {
        const name = test.classes[f.label];
        f.label = trainClasses.indexOf(name);
        if (f.label < 0) throw new Error(`image folder ${join(root, 'test', name)}: class '${name}' is not in train/`);
      }
    }
    return { classes: train.classes, train: train.files, test: test.files };
  }
  const all = await scanLayout(root, '');
  const test = all.files.filter((f) => inHashedTestSplit(f.rel));
  return { classes: all.classes, train: all.files.filter((f) => !inHashedTestSplit(f.rel)), test };
}

/** 1 for gray PNGs (colour types 0 and 4), 3 otherwise, read from the IHDR chunk. */
async function pngChannels(path: string): Promise<1 | 3> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(26);
    const { bytesRead } = await fh.read(head, 0, 26, 0);
    const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (bytesRead < 26 || sig.some((b, i) => head[i] !== b) || head.toString('latin1', 12, 16) !== 'IHDR') {
      throw new Error(`image folder: ${path} is not a PNG file (bad signature or header)`);
    }
    return head[25] === 0 || head[25] === 4 ? 1 : 3;
  } finally {
    await fh.close();
  }
}

/** Decodes a PNG into HWC with 1 or 3 channels (its own: gray or RGB), alpha composited over black. */
function decodePng(buf: Buffer, path: string): { data: Uint8Array; height: number; width: number; channels: 1 | 3 } {
  let png;
  try {
    png = PNG.sync.read(buf);
  } catch (e) {
    throw new Error(`image folder: cannot decode ${path}: ${(e as Error).message}`);
  }
  const { width, height } = png;
  const channels = png.color ? 3 : 1;
  const rgba = png.data, px = width * height;
  const out = new Uint8Array(px * channels);
  for (let p = 0; p < px; p++) {
    const a = rgba[4 * p + 3];
    for (let ch = 0; ch < channels; ch++) {
      const v = rgba[4 * p + ch];
      out[p * channels + ch] = a === 255 ? v : Math.round((v * a) / 255);
    }
  }
  return { data: out, height, width, channels };
}

function evenlySpaced(files: FileEntry[], limit: number | undefined): FileEntry[] {
  if (limit === undefined || limit >= files.length) return files;
  return Array.from({ length: limit }, (_, i) => files[Math.floor((i * files.length) / limit)]);
}

/** Loads one split of a PNG folder. With opts.limit, takes that many files evenly spaced over the
 *  sorted list (so every class is represented). */
export async function loadImageFolder(folder: string, split: 'train' | 'test', opts: FolderOptions = {}): Promise<ImageDataset> {
  const root = resolve(folder);
  const scan = await scanFolder(root);
  const all = split === 'train' ? scan.train : scan.test;
  if (!all.length) {
    throw new Error(`image folder ${root}: no images in the ${split} split (without train/ and test/ sub-folders ` +
      'about 10% of the files are held out for test by a hash of their names)');
  }
  let channels = opts.channels;
  if (channels === undefined) {
    let gray = 0;
    for (const f of [...scan.train, ...scan.test]) if ((await pngChannels(f.path)) === 1) gray++;
    channels = 2 * gray > scan.train.length + scan.test.length ? 1 : 3;
  }
  const files = evenlySpaced(all, opts.limit);
  let height = opts.size ?? 0, width = opts.size ?? 0;
  let images = new Uint8Array(0);
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const img = decodePng(await readFile(f.path), f.path);
    let data = convertChannels(img.data, img.height * img.width, img.channels, channels);
    if (opts.size) {
      const sq = centerCropSquare(data, img.height, img.width, channels);
      data = resizeImage(sq.data, sq.size, sq.size, channels, opts.size, opts.size);
    } else if (i === 0) {
      height = img.height; width = img.width;
    } else if (img.height !== height || img.width !== width) {
      throw new Error(`image folder: ${f.path} is ${img.height}x${img.width} but ${files[0].path} is ` +
        `${height}x${width}; pass a size (--size) to resize all images`);
    }
    if (i === 0) images = new Uint8Array(files.length * height * width * channels);
    images.set(data, i * height * width * channels);
  }
  const labels = scan.classes ? Int32Array.from(files, (f) => f.label) : null;
  return {
    name: root, split, n: files.length, height, width, channels,
    numClasses: scan.classes ? scan.classes.length : 0, images, labels,
    classNames: scan.classes ? [...scan.classes] : [],
  };
}
