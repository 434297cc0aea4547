// The FID InceptionV3 (lib/metrics/inception.ts) on random weights: the whole float32 graph against an
// independent float64 composite (unfolded BN, reference conv / pool ops) at a 75 x 75 input, the resize +
// normalisation presets against float64, grey = replicated RGB, batch independence, the 299 path's shapes,
// safetensors round trip, and the loader's errors for missing / misshapen keys.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BN_EPS, imagesFromUint8, inceptionConvSpecs, inceptionFromState, loadInception, randomInceptionWeights,
  INCEPTION_CLASSES, INCEPTION_FEATURES, type InceptionV3,
} from '../../lib/metrics/inception.js';
import { getDefaultDevice, tensor } from '../../lib/tensor/create.js';
import { supports } from '../../lib/tensor/kernel.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { writeSafetensors, type NamedArray } from '../../lib/io/safetensors.js';
import { expectClose, Rng } from '../harness/compare.js';
import { conv2dRef } from '../ref/conv.js';
import { avgPool2dRef, maxPool2dRef, resizeBilinearRef } from '../ref/pool.js';

const before = memory();
const skip = supports('max_pool2d_forward', getDefaultDevice()) ? false : `pool kernels are not available on ${getDefaultDevice()}`;
const rng = new Rng(2015);
const state = randomInceptionWeights(7);

// ---- float64 composite: one image as (C, H, W) planes ----
interface Map64 { d: Float64Array; C: number; H: number; W: number }
const f64 = (key: string): Float64Array => Float64Array.from(state.get(key)!.data as Float32Array);
const specs = inceptionConvSpecs();

function basic(name: string, x: Map64): Map64 {
  const s = specs.get(name)!;
  const y = conv2dRef(x.d, f64(`${name}.conv.weight`), null,
    { N: 1, Cin: s.cin, H: x.H, W: x.W, Cout: s.cout, KH: s.kh, KW: s.kw }, s.stride, s.pad);
  const OH = Math.floor((x.H + 2 * s.pad[0] - s.kh) / s.stride) + 1, OW = Math.floor((x.W + 2 * s.pad[1] - s.kw) / s.stride) + 1;
  const [g, b, mu, v] = ['weight', 'bias', 'running_mean', 'running_var'].map((k) => f64(`${name}.bn.${k}`));
  for (let c = 0; c < s.cout; c++) {
    for (let i = c * OH * OW; i < (c + 1) * OH * OW; i++) {
      y[i] = Math.max(0, ((y[i] - mu[c]) / Math.sqrt(v[c] + BN_EPS)) * g[c] + b[c]);
    }
  }
  return { d: y, C: s.cout, H: OH, W: OW };
}
function pool(x: Map64, kind: 'max' | 'avg', k: number, stride: number, pad: number): Map64 {
  const dims = { NC: x.C, H: x.H, W: x.W, KH: k, KW: k, SH: stride, SW: stride, PH: pad, PW: pad };
  const d = kind === 'max' ? maxPool2dRef(x.d, dims) : avgPool2dRef(x.d, dims, false);
  return { d, C: x.C, H: Math.floor((x.H + 2 * pad - k) / stride) + 1, W: Math.floor((x.W + 2 * pad - k) / stride) + 1 };
}
function cat(xs: Map64[]): Map64 {
  const d = new Float64Array(xs.reduce((n, x) => n + x.d.length, 0));
  let o = 0;
  for (const x of xs) { d.set(x.d, o); o += x.d.length; }
  return { d, C: xs.reduce((n, x) => n + x.C, 0), H: xs[0].H, W: xs[0].W };
}
const seq = (p: string, names: string[], x: Map64): Map64 => names.reduce((h, n) => basic(`${p}.${n}`, h), x);

function network64(x: Map64): { pool: Float64Array; logits: Float64Array } {
  let h = x;
  for (const n of ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3']) h = basic(n, h);
  h = pool(h, 'max', 3, 2, 0);
  for (const n of ['Conv2d_3b_1x1', 'Conv2d_4a_3x3']) h = basic(n, h);
  h = pool(h, 'max', 3, 2, 0);
  for (const p of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) {
    h = cat([basic(`${p}.branch1x1`, h), seq(p, ['branch5x5_1', 'branch5x5_2'], h),
      seq(p, ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], h), basic(`${p}.branch_pool`, pool(h, 'avg', 3, 1, 1))]);
  }
  h = cat([basic('Mixed_6a.branch3x3', h), seq('Mixed_6a', ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], h),
    pool(h, 'max', 3, 2, 0)]);
  for (const p of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) {
    h = cat([basic(`${p}.branch1x1`, h), seq(p, ['branch7x7_1', 'branch7x7_2', 'branch7x7_3'], h),
      seq(p, ['branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5'], h),
      basic(`${p}.branch_pool`, pool(h, 'avg', 3, 1, 1))]);
  }
  h = cat([seq('Mixed_7a', ['branch3x3_1', 'branch3x3_2'], h),
    seq('Mixed_7a', ['branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4'], h), pool(h, 'max', 3, 2, 0)]);
  for (const [p, kind] of [['Mixed_7b', 'avg'], ['Mixed_7c', 'max']] as const) {
    const a = basic(`${p}.branch3x3_1`, h), b = seq(p, ['branch3x3dbl_1', 'branch3x3dbl_2'], h);
    h = cat([basic(`${p}.branch1x1`, h), basic(`${p}.branch3x3_2a`, a), basic(`${p}.branch3x3_2b`, a),
      basic(`${p}.branch3x3dbl_3a`, b), basic(`${p}.branch3x3dbl_3b`, b), basic(`${p}.branch_pool`, pool(h, kind, 3, 1, 1))]);
  }
  const HW = h.H * h.W, feats = new Float64Array(h.C);
  for (let c = 0; c < h.C; c++) {
    let s = 0;
    for (let i = 0; i < HW; i++) s += h.d[c * HW + i];
    feats[c] = s / HW;
  }
  const fw = f64('fc.weight'), logits = new Float64Array(INCEPTION_CLASSES);
  for (let k = 0; k < INCEPTION_CLASSES; k++) {
    let s = 0;
    for (let e = 0; e < INCEPTION_FEATURES; e++) s += fw[k * INCEPTION_FEATURES + e] * feats[e];
    logits[k] = s;
  }
  return { pool: feats, logits };
}

const maxAbs = (a: ArrayLike<number>): number => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i])); return m; };

t.test('the float32 graph matches a float64 composite with unfolded BN (75 x 75, no resize)', { skip }, async (t) => {
  const net = inceptionFromState(state);
  try {
    const img = rng.uniform(3 * 75 * 75, 0, 1);
    const out = tidy(() => {
      const o = net.forward(tensor(img, [1, 3, 75, 75]), { size: 75 });
      return { pool: o.pool.toFloat32Array(), logits: o.logits!.toFloat32Array() };
    });
    // network input: resize 75 -> 75 is the identity, then 2x - 1
    const ref = network64({ d: Float64Array.from(img, (v) => 2 * v - 1), C: 3, H: 75, W: 75 });
    // ~20 float32 layers with dot products of up to 2048 terms (BN folded in float64, then w' rounded):
    // measured 7.9e-7 of max|ref| for the features, 3.8e-7 for the logits (CPU); tolerance 5e-6 of max|ref|.
    expectClose(t, 'pool features vs float64', out.pool, ref.pool, { atol: 5e-6 * maxAbs(ref.pool), rtol: 0 });
    expectClose(t, 'unbiased logits vs float64', out.logits, ref.logits, { atol: 5e-6 * maxAbs(ref.logits), rtol: 0 });
    t.ok(maxAbs(ref.pool) > 0.05, `features are not degenerate (max |pool| = ${maxAbs(ref.pool).toFixed(3)})`);
  } finally {
    net.dispose();
  }
});

t.test('presets: resize + normalisation against float64 (pytorch-fid, torch-fidelity, signed range)', { skip }, async (t) => {
  const net = inceptionFromState(state);
  try {
    const img = rng.uniform(2 * 3 * 20 * 30, 0, 1);
    tidy(() => {
      const x = tensor(img, [2, 3, 20, 30]);
      const x64 = Float64Array.from(img);
      const pt = resizeBilinearRef(x64, 6, 20, 30, 80, 80, 'pytorch').map((v) => 2 * v - 1);
      const tf = resizeBilinearRef(x64, 6, 20, 30, 80, 80, 'tf1').map((v) => (255 * v - 128) / 128);
      // float32 source coordinates (see test/kernels/pool.test.ts) plus the affine map: 2^-21 * 30 * 2
      expectClose(t, 'pytorch-fid prepare', net.prepare(x, { size: 80 }).toFloat32Array(), pt, { atol: 3e-5, rtol: 0 });
      expectClose(t, 'torch-fidelity prepare', net.prepare(x, { size: 80, preset: 'torch-fidelity' }).toFloat32Array(), tf,
        { atol: 3e-5, rtol: 0 });
      const signed = tensor(Float32Array.from(img, (v) => 2 * v - 1), [2, 3, 20, 30]);
      expectClose(t, 'signed range = unit range', net.prepare(signed, { size: 80, range: 'signed' }).toFloat32Array(), pt,
        { atol: 3e-5, rtol: 0 });
      t.throws(() => net.prepare(x, { preset: 'clean' as 'pytorch-fid' }), /preset must be 'pytorch-fid' or 'torch-fidelity'/);
      t.throws(() => net.prepare(tensor(img.slice(0, 2 * 2 * 600), [2, 2, 20, 30])), /images must be float32 \(B, 1 or 3, H, W\)/);
      t.throws(() => net.prepare(x, { size: 64 }), /size must be an integer >= 75, got 64/);
    });
  } finally {
    net.dispose();
  }
});

t.test('grey images = replicated RGB; batch rows are independent; uint8 input', { skip }, async (t) => {
  const net = inceptionFromState(state);
  try {
    const grey = rng.uniform(2 * 75 * 75, 0, 1);
    tidy(() => {
      const rgb = new Float32Array(2 * 3 * 75 * 75);
      for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) rgb.set(grey.subarray(b * 5625, (b + 1) * 5625), (b * 3 + c) * 5625);
      const g = net.forward(tensor(grey, [2, 1, 75, 75]), { size: 75 }).pool.toFloat32Array();
      const c = net.forward(tensor(rgb, [2, 3, 75, 75]), { size: 75 }).pool.toFloat32Array();
      expectClose(t, 'grey vs replicated RGB', g, c, { atol: 0, rtol: 0 });
      const one = net.forward(tensor(grey.slice(5625), [1, 1, 75, 75]), { size: 75 }).pool.toFloat32Array();
      // same arithmetic per image, but GEMM blocking (cuBLAS: the algorithm) may differ with the batch width:
      // measured 1.1e-6 of max|x| on the H100 (2026-11-26), a few ulp on the CPU; bound 5e-6 of max|x|
      expectClose(t, 'image 1 alone vs in a batch of 2', one, g.subarray(INCEPTION_FEATURES), { atol: 5e-6 * maxAbs(one), rtol: 0 });
      const u8 = Uint8Array.from({ length: 2 * 75 * 75 * 3 }, (_, i) => (i * 37) % 256);
      const x = imagesFromUint8(u8, [2, 75, 75, 3]);
      t.same(x.shape, [2, 3, 75, 75]);
      t.equal(x.toFloat32Array()[75 * 75], Math.fround(u8[1] / 255), 'NHWC -> NCHW: channel 1 of pixel 0');
      t.throws(() => imagesFromUint8(u8, [2, 75, 75, 2]), /do not form \(B, H, W, C\)/);
      const e = net.embed(x, { batchSize: 1, size: 75 });
      const direct = net.forward(x, { size: 75 });
      expectClose(t, 'embed (batches of 1) vs forward', e.pool, direct.pool.toFloat32Array(), { atol: 1e-6 * maxAbs(e.pool), rtol: 0 });
      t.equal(e.logits!.length, 2 * INCEPTION_CLASSES);
    });
  } finally {
    net.dispose();
  }
});

t.test('2 images 75 x 75 resized to 299: output shapes, finite features', { skip }, async (t) => {
  const net = inceptionFromState(state);
  try {
    tidy(() => {
      const out = net.forward(tensor(rng.uniform(2 * 3 * 75 * 75, 0, 1), [2, 3, 75, 75]));
      t.same(out.pool.shape, [2, INCEPTION_FEATURES]);
      t.same(out.logits!.shape, [2, INCEPTION_CLASSES]);
      const p = out.pool.toFloat32Array();
      t.ok(p.every(Number.isFinite) && p.every((v) => v >= 0), 'pool features are finite and >= 0 (after ReLU)');
      t.ok(maxAbs(p) > 0, 'features are not all zero');
    });
  } finally {
    net.dispose();
  }
});

t.test('safetensors round trip and loader errors', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dd2-inception-'));
  try {
    const path = join(dir, 'inc.safetensors');
    writeSafetensors(path, state);
    const a = loadInception(path), b = inceptionFromState(state);
    try {
      tidy(() => {
        const x = tensor(rng.uniform(3 * 75 * 75, 0, 1), [1, 3, 75, 75]);
        t.same([...a.forward(x, { size: 75 }).pool.toFloat32Array()], [...b.forward(x, { size: 75 }).pool.toFloat32Array()]);
      });
    } finally {
      a.dispose();
      b.dispose();
    }
    const missing = new Map(state);
    missing.delete('Mixed_6c.branch7x7dbl_3.bn.running_var');
    writeSafetensors(path, missing);
    t.throws(() => loadInception(path),
      new Error(`dd2: loadInception ${path}: missing tensor 'Mixed_6c.branch7x7dbl_3.bn.running_var' (expected shape [160]); ` +
        `the file must use pytorch-fid's state-dict names (see docs/inception.md)`));
    const bad = new Map(state);
    const w = state.get('Mixed_7c.branch3x3_2a.conv.weight')!;
    bad.set('Mixed_7c.branch3x3_2a.conv.weight', { dtype: 'F32', shape: [384, 384, 3, 1], data: w.data } as NamedArray);
    t.throws(() => inceptionFromState(bad, { source: 'x.safetensors' }),
      /x\.safetensors: tensor 'Mixed_7c\.branch3x3_2a\.conv\.weight' has shape \[384, 384, 3, 1\], expected \[384, 384, 1, 3\]/);
    const noFc = new Map(state);
    noFc.delete('fc.weight');
    const n = inceptionFromState(noFc);
    t.equal(n.hasLogits, false, 'without fc.weight the network gives no logits');
    n.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
});
