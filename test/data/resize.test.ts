// resize.ts against hand-worked 1-D cases and a direct 2-D float64 reference (area overlap when an
// axis shrinks, the linear "tent" when it grows), plus centre crops and channel conversion.
import t from 'tap';
import { axisWeights, centerCropSquare, convertChannels, resizeImage, resizeImages } from '../../lib/data/resize.js';
import { Rng } from '../harness/compare.js';

/** Weight of input pixel i for output o along an axis of inSize -> outSize, written directly:
 *  the covered fraction of o's footprint when shrinking, the tent around o's centre when growing. */
function refWeight(i: number, o: number, inSize: number, outSize: number): number {
  const s = inSize / outSize;
  if (outSize === inSize) return i === o ? 1 : 0;
  if (outSize < inSize) return Math.max(0, Math.min(i + 1, (o + 1) * s) - Math.max(i, o * s)) / s;
  const x = Math.min(Math.max((o + 0.5) * s - 0.5, 0), inSize - 1);
  return Math.max(0, 1 - Math.abs(x - i));
}

/** Float64 reference output (before rounding) of an HWC image resized to (oh, ow). */
function refResize(src: Uint8Array, h: number, w: number, c: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(oh * ow * c);
  for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let y = 0; y < h; y++) {
      const wy = refWeight(y, oy, h, oh);
      if (wy) for (let x = 0; x < w; x++) s += wy * refWeight(x, ox, w, ow) * src[(y * w + x) * c + ch];
    }
    out[(oy * ow + ox) * c + ch] = s;
  }
  return out;
}

t.test('hand-worked 1-D cases', async (t) => {
  // shrink 3 -> 2: footprints [0, 1.5) and [1.5, 3): (0 + 0.5*90)/1.5 = 30, (0.5*90 + 180)/1.5 = 150
  t.same(Array.from(resizeImage(Uint8Array.of(0, 90, 180), 1, 3, 1, 1, 2)), [30, 150]);
  // grow 2 -> 4: centres map to -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1
  t.same(Array.from(resizeImage(Uint8Array.of(0, 100), 2, 1, 1, 4, 1)), [0, 25, 75, 100]);
  // shrink by 2 is the pair mean, rounded half up: (1 + 2) / 2 = 1.5 -> 2
  t.same(Array.from(resizeImage(Uint8Array.of(1, 2, 10, 20), 1, 4, 1, 1, 2)), [2, 15]);
  for (const [a, b] of [[7, 3], [3, 7], [28, 32], [32, 28], [5, 5], [1, 4], [4, 1]]) {
    const wts = axisWeights(a, b);
    const sums = wts.weight.map((w) => w.reduce((s, v) => s + v, 0));
    t.ok(sums.every((s) => Math.abs(s - 1) < 1e-12), `${a} -> ${b}: weights sum to 1`);
  }
  t.throws(() => axisWeights(0, 3), /sizes must be positive integers, got 0 -> 3/);
});

t.test('2-D resize equals the direct float64 reference, rounded', async (t) => {
  const rng = new Rng(11);
  const cases: [number, number, number, number, number][] = [   // h, w, c, oh, ow
    [28, 28, 1, 14, 14], [28, 28, 1, 32, 32], [28, 28, 1, 11, 11], [7, 9, 3, 5, 13], [13, 6, 3, 20, 4],
    [1, 1, 3, 3, 3], [5, 5, 1, 1, 1], [33, 17, 1, 7, 33],
  ];
  for (const [h, w, c, oh, ow] of cases) {
    const src = Uint8Array.from(rng.ints(h * w * c, 256));
    const got = resizeImage(src, h, w, c, oh, ow);
    const ref = refResize(src, h, w, c, oh, ow);
    let maxPre = 0, off = 0;
    got.forEach((v, i) => {
      maxPre = Math.max(maxPre, Math.abs(v - ref[i]));
      if (v !== Math.round(ref[i])) off++;
    });
    // Rounding alone bounds |got - ref| by 0.5. An exact .5 could round the other way after a different
    // summation order; measured: no rounded value differs in any case, so none may.
    t.ok(maxPre <= 0.5 + 1e-9 && off === 0,
      `${h}x${w}x${c} -> ${oh}x${ow}: max |got - ref| = ${maxPre.toFixed(4)}, ${off} differ after rounding`);
  }
});

t.test('constant images stay constant; identity size copies; batches resize each image', async (t) => {
  const c = new Uint8Array(10 * 7 * 3).fill(201);
  t.ok(resizeImage(c, 10, 7, 3, 4, 15).every((v) => v === 201), 'constant');
  const src = Uint8Array.from(new Rng(2).ints(6 * 6, 256));
  const same = resizeImage(src, 6, 6, 1, 6, 6);
  t.same(same, src);
  t.not(same, src, 'a copy, not the input');
  const two = new Uint8Array(72); two.set(src); two.set(src.map((v) => 255 - v), 36);
  const both = resizeImages(two, 2, 6, 6, 1, 4, 4);
  t.same(both.subarray(0, 16), resizeImage(src, 6, 6, 1, 4, 4));
  t.same(both.subarray(16), resizeImage(src.map((v) => 255 - v), 6, 6, 1, 4, 4));
  t.throws(() => resizeImage(src, 5, 6, 1, 3, 3), /36 bytes do not hold a 5x6x1 image/);
});

t.test('centre crop and channel conversion', async (t) => {
  const img = Uint8Array.from({ length: 2 * 5 }, (_, i) => i);          // 2 x 5, one channel
  const sq = centerCropSquare(img, 2, 5, 1);
  t.equal(sq.size, 2);
  t.same(Array.from(sq.data), [1, 2, 6, 7], 'columns 1..2 (offset rounds down)');
  const tall = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => i);     // 4 x 2, three channels
  t.same(Array.from(centerCropSquare(tall, 4, 2, 3).data), Array.from(tall.subarray(6, 18)), 'rows 1..2');
  t.same(Array.from(convertChannels(Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9), 4, 3, 1)),
    [76, 150, 29, 9], '601 luma: 76.245, 149.685, 29.07, 9');
  t.same(Array.from(convertChannels(Uint8Array.of(4, 200), 2, 1, 3)), [4, 4, 4, 200, 200, 200]);
  t.throws(() => convertChannels(Uint8Array.of(1, 2), 1, 2, 3), /cannot convert 2 to 3 channels/);
});
