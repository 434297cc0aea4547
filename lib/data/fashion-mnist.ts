// Fashion-MNIST (Zalando SE; MIT) from Debian's dataset-fashion-mnist package, which installs gzipped
// IDX files in /usr/share/datasets/fashion-mnist/. 60,000 train and 10,000 test images, 28x28x1
// uint8, 10 balanced clothing classes. The folder can be overridden with DD2_FASHION_MNIST_DIR
// (same file names, gzipped or not).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageDataset } from './dataset.js';
import { loadIdxPair } from './idx.js';
import { findIdxFile } from './mnist.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_APT = 'apt-get install dataset-fashion-mnist';

/** SHA-256 of the uncompressed content, computed from dataset-fashion-mnist
 *  0.0~git20200523.55506a9-1 (Debian bookworm); they agree with shared/design/DATA-EVAL.md §1.3. The
 *  .gz files themselves are not checked because Debian recompressed them. */
export const FASHION_MNIST_FILES = {
  train: {
    images: { file: 'train-images-idx3-ubyte', sha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888' },
    labels: { file: 'train-labels-idx1-ubyte', sha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9' },
  },
  test: {
    images: { file: 't10k-images-idx3-ubyte', sha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b' },
    labels: { file: 't10k-labels-idx1-ubyte', sha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34' },
  },
} as const;

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export function fashionMnistDir(): string {
  return process.env.DD2_FASHION_MNIST_DIR || FASHION_MNIST_DIR;
}

/** Loads one split from a folder holding the Fashion-MNIST files, verifying their checksums. */
export async function loadFashionMnistFrom(dir: string, split: 'train' | 'test'): Promise<ImageDataset> {
  if (!existsSync(dir)) {
    throw new Error(`Fashion-MNIST: folder ${dir} not found; install the data with \`${FASHION_MNIST_APT}\` ` +
      '(or set DD2_FASHION_MNIST_DIR)');
  }
  const f = FASHION_MNIST_FILES[split];
  const paths = [f.images.file, f.labels.file].map((file) => {
    const p = findIdxFile(dir, file);
    if (!p) {
      throw new Error(`Fashion-MNIST: ${join(dir, `${file}.gz`)} not found; reinstall the data with ` +
        `\`${FASHION_MNIST_APT}\``);
    }
    return p;
  });
  return loadIdxPair({
    name: 'fashion-mnist', split, imagesPath: paths[0], labelsPath: paths[1],
    imagesSha256: f.images.sha256, labelsSha256: f.labels.sha256, classNames: FASHION_MNIST_CLASSES,
  });
}

export async function loadFashionMnist(split: 'train' | 'test'): Promise<ImageDataset> {
  return loadFashionMnistFrom(fashionMnistDir(), split);
}
