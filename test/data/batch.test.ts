// imageBatch / labelBatch: NHWC uint8 -> (B, C, H, W) float32 v / 127.5 - 1 on the requested device,
// int32 labels, index and label checks, toUint8Images as the exact inverse, and no leaked tensors.
import t from 'tap';
import { imageBatch, labelBatch, toUint8Images, type ImageDataset } from '../../lib/data/dataset.js';
import { getDefaultDevice, tensor } from '../../lib/tensor/create.js';
import { memory } from '../../lib/tensor/engine.js';

const dev = getDefaultDevice();
const N = 6, H = 2, W = 3, C = 3;
const images = Uint8Array.from({ length: N * H * W * C }, (_, i) => (i * 37 + 11) % 256);
images[0] = 0; images[1] = 255;
const ds: ImageDataset = { name: 'toy', split: 'train', n: N, height: H, width: W, channels: C, numClasses: 4,
  images, labels: Int32Array.of(3, 1, 0, 2, 2, 1) };
const before = memory();

t.test('imageBatch layout and values', async (t) => {
  const idx = Int32Array.of(4, 0, 4);
  const x = imageBatch(ds, idx, { device: dev });
  t.same(x.shape, [3, C, H, W]);
  t.equal(x.dtype, 'float32');
  t.equal(x.device, dev);
  const v = x.toFloat32Array();
  let worst = 0;
  for (let b = 0; b < 3; b++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) {
    const want = images[((idx[b] * H + y) * W + xx) * C + c] / 127.5 - 1;
    worst = Math.max(worst, Math.abs(v[((b * C + c) * H + y) * W + xx] - want));
  }
  t.ok(worst <= 6e-8, `max |x - (v / 127.5 - 1)| = ${worst} (float32 rounding, half an ulp at 1 is 6e-8)`);
  t.equal(v[3 * H * W], -1, 'byte 0 -> -1 exactly');          // image 0, channel 0, pixel 0
  t.equal(v[3 * H * W + H * W], 1, 'byte 255 -> 1 exactly');  // image 0, channel 1, pixel 0
  x.dispose();
  const gray: ImageDataset = { ...ds, channels: 1, images: images.subarray(0, N * H * W) };
  const g = imageBatch(gray, Int32Array.of(1));
  t.same(g.shape, [1, 1, H, W]);
  t.same(Array.from(g.toFloat32Array()), Array.from(gray.images.subarray(6, 12), (b) => Math.fround(b / 127.5 - 1)));
  g.dispose();
});

t.test('labelBatch and index checks', async (t) => {
  const y = labelBatch(ds, Int32Array.of(0, 5, 2), { device: dev });
  t.equal(y.dtype, 'int32');
  t.same(y.shape, [3]);
  t.same(Array.from(y.toInt32Array()), [3, 1, 0]);
  y.dispose();
  t.throws(() => imageBatch(ds, Int32Array.of(0, 6)), /imageBatch: index 6 at position 1 is outside dataset 'toy' \(n = 6\)/);
  t.throws(() => labelBatch(ds, Int32Array.of(-1)), /labelBatch: index -1 at position 0/);
  t.throws(() => labelBatch({ ...ds, labels: null }, Int32Array.of(0)), /dataset 'toy' \(train\) has no labels/);
});

t.test('toUint8Images inverts imageBatch exactly and clamps', async (t) => {
  const x = imageBatch(ds, Int32Array.from({ length: N }, (_, i) => i));
  t.same(toUint8Images(x), images, 'round trip is exact');
  x.dispose();
  const z = tensor([-1.5, -1, 0, 0.999, 1, 7, NaN, -0.0041], [1, 2, 2, 2]);
  // channel 0 holds the first 4 values, channel 1 the next 4; NHWC interleaves them
  t.same(Array.from(toUint8Images(z)), [0, 255, 0, 255, 128, 0, 255, 127]);
  const flat = tensor([1, 2], [2]);
  t.throws(() => toUint8Images(flat), /toUint8Images: expected float32 \(B, C, H, W\), got float32\[2\]/);
  z.dispose();
  flat.dispose();
});

t.test('no tensors leaked', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors);
  t.equal(after[dev].bytes, before[dev].bytes);
});
