// PNG output: grayscale and RGB images round-trip through pngjs' decoder with the right colour type;
// the grid puts image i at row i / nrow, column i % nrow behind a 2-pixel border of 255, fills unused
// cells with the border value, and its bytes are deterministic.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPng, tileGrid, writeGrid, writePng } from '../../lib/io/png.js';

const H = 5, W = 7;
const image = (n: number, c: number, seed: number): Uint8Array => new Uint8Array(n * H * W * c).map((_, i) => (i * 37 + seed * 101) % 256);

t.test('single images', async (t) => {
  const dir = t.testdir();
  for (const c of [1, 3] as const) {
    const p = join(dir, `i${c}.png`), img = image(1, c, c);
    writePng(p, img, H, W, c);
    const buf = readFileSync(p);
    t.equal(buf.toString('latin1', 1, 4), 'PNG', 'PNG signature');
    t.equal(buf.readUInt32BE(16), W, 'IHDR width');
    t.equal(buf.readUInt32BE(20), H, 'IHDR height');
    t.equal(buf[24], 8, 'bit depth 8');
    t.equal(buf[25], c === 1 ? 0 : 2, `colour type ${c === 1 ? '0 (gray)' : '2 (RGB)'}`);
    const back = readPng(p, c);
    t.same([back.height, back.width, back.channels], [H, W, c]);
    t.ok(Buffer.from(back.data).equals(Buffer.from(img)), `${c}-channel pixels round trip`);
  }
  t.throws(() => writePng(join(dir, 'x.png'), new Uint8Array(10), H, W, 1), /writePng: 1x5x7x1 needs 35 bytes, got 10/);
  t.throws(() => writePng(join(dir, 'x.png'), new Uint8Array(35), H, W, 2 as 1), /channels must be 1 or 3/);
});

t.test('grid layout', async (t) => {
  const dir = t.testdir();
  for (const c of [1, 3] as const) {
    const n = 5, nrow = 3, imgs = image(n, c, 9);
    const g = tileGrid(imgs, n, H, W, c, nrow);
    t.same([g.height, g.width], [2 * (H + 2) + 2, 3 * (W + 2) + 2], 'rows x cols cells with 2-px borders');
    let ok = true, border = true;
    for (let y = 0; y < g.height; y++) {
      for (let x = 0; x < g.width; x++) {
        const row = Math.floor((y - 2) / (H + 2)), col = Math.floor((x - 2) / (W + 2));
        const iy = (y - 2) % (H + 2), ix = (x - 2) % (W + 2), i = row * nrow + col;
        const inside = y >= 2 && x >= 2 && iy < H && ix < W && i < n;
        for (let ch = 0; ch < c; ch++) {
          const v = g.data[(y * g.width + x) * c + ch];
          if (inside) ok &&= v === imgs[((i * H + iy) * W + ix) * c + ch];
          else border &&= v === 255;
        }
      }
    }
    t.ok(ok, `${c} channels: every image pixel in its cell`);
    t.ok(border, `${c} channels: borders and the unused cell are 255`);
    const p = join(dir, `g${c}.png`);
    writeGrid(p, imgs, n, H, W, c, nrow);
    t.ok(Buffer.from(readPng(p, c).data).equals(Buffer.from(g.data)), 'writeGrid writes the tiled image');
    writeGrid(join(dir, 'again.png'), imgs, n, H, W, c, nrow);
    t.ok(readFileSync(join(dir, 'again.png')).equals(readFileSync(p)), 'same pixels, same bytes');
  }
  const d = tileGrid(image(10, 1, 1), 10, H, W, 1);
  t.same([d.height, d.width], [3 * (H + 2) + 2, 4 * (W + 2) + 2], 'default nrow = ceil(sqrt(10)) = 4 columns');
  t.throws(() => tileGrid(new Uint8Array(0), 0, H, W, 1), /need at least one image/);
});
