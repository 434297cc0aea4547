// The FID InceptionV3 of pytorch-fid (mseitzer): torchvision's Inception3 patched to match the TF
// 2015-12-05 graph (DATA-EVAL.md §3.2), inference only, in dd2's tensor ops.
//   input   images (B, C, H, W), C = 1 (replicated to 3) or 3, values in [0, 1] (or [-1, 1], or uint8 NHWC
//           through imagesFromUint8) -> bilinear resize to 299 x 299 -> normalisation -> the network
//   output  pool (B, 2048): the pool_3 features (adaptive average pool of Mixed_7c);
//           logits (B, 1008): pool · fc.weightᵀ WITHOUT the bias ('logits_unbiased', for the Inception
//           Score), when the weights hold fc.weight; else null.
// Blocks: BasicConv2d = conv (no bias) -> BN (eps 1e-3) -> ReLU, with BN folded into the convolution's
// weight and a bias at load time (in float64). Mixed_5b/5c/5d = FIDInceptionA, Mixed_6a = InceptionB,
// Mixed_6b..6e = FIDInceptionC, Mixed_7a = InceptionD, Mixed_7b = FIDInceptionE_1, Mixed_7c = FIDInceptionE_2;
// the A / C / E_1 pool branches use avg_pool 3/1/1 with count_include_pad = False, E_2 uses max_pool 3/1/1.
// Presets: 'pytorch-fid' = PyTorch half-pixel bilinear resize, then 2x - 1 (default);
//          'torch-fidelity' = TF1 asymmetric bilinear resize, then (255x - 128) / 128.
// Weights: pytorch-fid state-dict names (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_var,
// Mixed_5b.branch1x1.conv.weight, ..., fc.weight, fc.bias); scripts/convert-inception.py writes them from
// pt_inception-2015-12-05-6726825d.pth (docs/inception.md). Letters: B images, E = 2048 features.
import { readSafetensors, toFloat32, type NamedArray } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor, getDefaultDevice, toDevice } from '../tensor/create.js';
import type { Device } from '../tensor/dtype.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { conv2d } from '../tensor/ops/conv.js';
import { avgPool2d, maxPool2d, resizeBilinear, type ResizeMode } from '../tensor/ops/pool.js';
import { addScalar, mulScalar, relu } from '../tensor/ops/elementwise.js';
import { concat, expand, slice } from '../tensor/ops/shape.js';
import { mean } from '../tensor/ops/reduce.js';
import { matmul } from '../tensor/ops/matmul.js';
import { fmtShape } from '../tensor/shape.js';

export const INCEPTION_SIZE = 299;
export const INCEPTION_FEATURES = 2048;
export const INCEPTION_CLASSES = 1008;
export const BN_EPS = 1e-3;

/** One BasicConv2d: conv weight (cout, cin, kh, kw), stride, zero padding [ph, pw]. */
export interface ConvSpec { cin: number; cout: number; kh: number; kw: number; stride: number; pad: [number, number] }

/** Every BasicConv2d of the network by its state-dict prefix, in forward order. */
export function inceptionConvSpecs(): Map<string, ConvSpec> {
  const m = new Map<string, ConvSpec>();
  const add = (name: string, cin: number, cout: number, k: number | [number, number], stride = 1,
    pad: number | [number, number] = 0): void => {
    const [kh, kw] = typeof k === 'number' ? [k, k] : k;
    m.set(name, { cin, cout, kh, kw, stride, pad: typeof pad === 'number' ? [pad, pad] : pad });
  };
  add('Conv2d_1a_3x3', 3, 32, 3, 2);
  add('Conv2d_2a_3x3', 32, 32, 3);
  add('Conv2d_2b_3x3', 32, 64, 3, 1, 1);
  add('Conv2d_3b_1x1', 64, 80, 1);
  add('Conv2d_4a_3x3', 80, 192, 3);
  const blockA = (p: string, cin: number, poolFeatures: number): void => {
    add(`${p}.branch1x1`, cin, 64, 1);
    add(`${p}.branch5x5_1`, cin, 48, 1);
    add(`${p}.branch5x5_2`, 48, 64, 5, 1, 2);
    add(`${p}.branch3x3dbl_1`, cin, 64, 1);
    add(`${p}.branch3x3dbl_2`, 64, 96, 3, 1, 1);
    add(`${p}.branch3x3dbl_3`, 96, 96, 3, 1, 1);
    add(`${p}.branch_pool`, cin, poolFeatures, 1);
  };
  blockA('Mixed_5b', 192, 32);
  blockA('Mixed_5c', 256, 64);
  blockA('Mixed_5d', 288, 64);
  add('Mixed_6a.branch3x3', 288, 384, 3, 2);
  add('Mixed_6a.branch3x3dbl_1', 288, 64, 1);
  add('Mixed_6a.branch3x3dbl_2', 64, 96, 3, 1, 1);
  add('Mixed_6a.branch3x3dbl_3', 96, 96, 3, 2);
  const blockC = (p: string, c7: number): void => {
    add(`${p}.branch1x1`, 768, 192, 1);
    add(`${p}.branch7x7_1`, 768, c7, 1);
    add(`${p}.branch7x7_2`, c7, c7, [1, 7], 1, [0, 3]);
    add(`${p}.branch7x7_3`, c7, 192, [7, 1], 1, [3, 0]);
    add(`${p}.branch7x7dbl_1`, 768, c7, 1);
    add(`${p}.branch7x7dbl_2`, c7, c7, [7, 1], 1, [3, 0]);
    add(`${p}.branch7x7dbl_3`, c7, c7, [1, 7], 1, [0, 3]);
    add(`${p}.branch7x7dbl_4`, c7, c7, [7, 1], 1, [3, 0]);
    add(`${p}.branch7x7dbl_5`, c7, 192, [1, 7], 1, [0, 3]);
    add(`${p}.branch_pool`, 768, 192, 1);
  };
  blockC('Mixed_6b', 128);
  blockC('Mixed_6c', 160);
  blockC('Mixed_6d', 160);
  blockC('Mixed_6e', 192);
  add('Mixed_7a.branch3x3_1', 768, 192, 1);
  add('Mixed_7a.branch3x3_2', 192, 320, 3, 2);
  add('Mixed_7a.branch7x7x3_1', 768, 192, 1);
  add('Mixed_7a.branch7x7x3_2', 192, 192, [1, 7], 1, [0, 3]);
  add('Mixed_7a.branch7x7x3_3', 192, 192, [7, 1], 1, [3, 0]);
  add('Mixed_7a.branch7x7x3_4', 192, 192, 3, 2);
  const blockE = (p: string, cin: number): void => {
    add(`${p}.branch1x1`, cin, 320, 1);
    add(`${p}.branch3x3_1`, cin, 384, 1);
    add(`${p}.branch3x3_2a`, 384, 384, [1, 3], 1, [0, 1]);
    add(`${p}.branch3x3_2b`, 384, 384, [3, 1], 1, [1, 0]);
    add(`${p}.branch3x3dbl_1`, cin, 448, 1);
    add(`${p}.branch3x3dbl_2`, 448, 384, 3, 1, 1);
    add(`${p}.branch3x3dbl_3a`, 384, 384, [1, 3], 1, [0, 1]);
    add(`${p}.branch3x3dbl_3b`, 384, 384, [3, 1], 1, [1, 0]);
    add(`${p}.branch_pool`, cin, 192, 1);
  };
  blockE('Mixed_7b', 1280);
  blockE('Mixed_7c', 2048);
  return m;
}

/** Every tensor the loader reads, with its shape (fc.bias is optional and unused: logits are unbiased). */
export function inceptionStateShapes(): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const [name, s] of inceptionConvSpecs()) {
    m.set(`${name}.conv.weight`, [s.cout, s.cin, s.kh, s.kw]);
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) m.set(`${name}.bn.${k}`, [s.cout]);
  }
  m.set('fc.weight', [INCEPTION_CLASSES, INCEPTION_FEATURES]);
  m.set('fc.bias', [INCEPTION_CLASSES]);
  return m;
}

export type InceptionPreset = 'pytorch-fid' | 'torch-fidelity';
export interface InceptionOptions {
  /** resize + normalisation convention (default 'pytorch-fid') */
  preset?: InceptionPreset;
  /** input value range: 'unit' = [0, 1] (default), 'signed' = [-1, 1] (dd2 model outputs) */
  range?: 'unit' | 'signed';
  /** resize target (default 299); other sizes (>= 75) only for tests and experiments */
  size?: number;
}
export interface InceptionOutput { pool: Tensor; logits: Tensor | null }

interface FoldedConv { spec: ConvSpec; w: Tensor; b: Tensor }

/** The network with BN folded; owns its device tensors (dispose() frees them). */
export class InceptionV3 {
  readonly device: Device;
  private readonly convs = new Map<string, FoldedConv>();
  /** fc.weight transposed (2048, 1008), or null when the weights have no classifier */
  private readonly fcT: Tensor | null;

  constructor(convs: Map<string, FoldedConv>, fcT: Tensor | null, device: Device) {
    this.convs = convs;
    this.fcT = fcT;
    this.device = device;
  }

  get hasLogits(): boolean { return this.fcT !== null; }

  dispose(): void {
    for (const c of this.convs.values()) { c.w.dispose(); c.b.dispose(); }
    this.fcT?.dispose();
  }

  /** pool features (B, 2048) and unbiased logits (B, 1008) of images (B, 1 | 3, H, W); no gradients. */
  forward(images: Tensor, opts: InceptionOptions = {}): InceptionOutput {
    return noGrad(() => tidy(() => {
      const x = this.prepare(images, opts);
      const f = this.trunk(x);                                       // (B, 2048, h, w)
      const pool = mean(f, [2, 3]);                                   // (B, 2048)
      const logits = this.fcT ? matmul(pool, this.fcT) : null;
      return { pool, logits };
    }));
  }

  /** Resize, normalise and replicate grey to RGB: (B, 3, size, size) network input. */
  prepare(images: Tensor, opts: InceptionOptions = {}): Tensor {
    const preset = opts.preset ?? 'pytorch-fid';
    if (preset !== 'pytorch-fid' && preset !== 'torch-fidelity') {
      throw new RangeError(`dd2: inception: preset must be 'pytorch-fid' or 'torch-fidelity', got '${String(preset)}'`);
    }
    const size = opts.size ?? INCEPTION_SIZE;
    if (!Number.isInteger(size) || size < 75) throw new RangeError(`dd2: inception: size must be an integer >= 75, got ${size}`);
    if (images.rank !== 4 || (images.shape[1] !== 1 && images.shape[1] !== 3) || images.dtype !== 'float32') {
      throw new RangeError(`dd2: inception: images must be float32 (B, 1 or 3, H, W), got ${images.describe()}`);
    }
    if (images.device !== this.device) {
      throw new Error(`dd2: inception: images are on ${images.device} but the network is on ${this.device}`);
    }
    return tidy(() => {
      let x = images;
      if (opts.range === 'signed') x = mulScalar(addScalar(x, 1), 0.5);
      else if (opts.range !== undefined && opts.range !== 'unit') {
        throw new RangeError(`dd2: inception: range must be 'unit' or 'signed', got '${String(opts.range)}'`);
      }
      const mode: ResizeMode = preset === 'pytorch-fid' ? 'pytorch' : 'tf1';
      x = resizeBilinear(x, [size, size], { mode });
      // pytorch-fid: 2x - 1;  torch-fidelity: (255x - 128) / 128
      x = preset === 'pytorch-fid' ? addScalar(mulScalar(x, 2), -1) : addScalar(mulScalar(x, 255 / 128), -1);
      if (x.shape[1] === 1) x = expand(x, [x.shape[0], 3, size, size]);
      return x;
    });
  }

  /** The convolutional trunk: (B, 3, S, S) -> Mixed_7c output (B, 2048, h, w). Each block runs in its own
   *  tidy scope and frees its input, so at most a block's working set is alive. */
  trunk(x: Tensor): Tensor {
    return noGrad(() => tidy(() => {
      let h = tidy(() => this.stem(x));
      for (const p of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) h = this.step(h, (y) => this.blockA(p, y));
      h = this.step(h, (y) => this.blockB('Mixed_6a', y));
      for (const p of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) h = this.step(h, (y) => this.blockC(p, y));
      h = this.step(h, (y) => this.blockD('Mixed_7a', y));
      h = this.step(h, (y) => this.blockE('Mixed_7b', y, 'avg'));
      h = this.step(h, (y) => this.blockE('Mixed_7c', y, 'max'));
      return h;
    }));
  }

  /** Runs one block in a tidy scope, then frees its input (an earlier block's output). */
  private step(x: Tensor, block: (x: Tensor) => Tensor): Tensor {
    const y = tidy(() => block(x));
    x.dispose();
    return y;
  }

  /** conv -> folded BN -> ReLU for the BasicConv2d `name`. */
  conv(name: string, x: Tensor): Tensor {
    const c = this.convs.get(name);
    if (!c) throw new Error(`dd2: inception: no convolution '${name}'`);
    return relu(conv2d(x, c.w, c.b, { stride: c.spec.stride, padding: c.spec.pad }));
  }

  /** Conv2d_1a..2b, max pool 3/2, Conv2d_3b..4a, max pool 3/2: (B, 3, 299, 299) -> (B, 192, 35, 35). */
  stem(x: Tensor): Tensor {
    let h = this.conv('Conv2d_1a_3x3', x);
    h = this.conv('Conv2d_2a_3x3', h);
    h = this.conv('Conv2d_2b_3x3', h);
    h = maxPool2d(h, 3, { stride: 2 });
    h = this.conv('Conv2d_3b_1x1', h);
    h = this.conv('Conv2d_4a_3x3', h);
    return maxPool2d(h, 3, { stride: 2 });
  }

  private chain(p: string, names: string[], x: Tensor): Tensor {
    let h = x;
    for (const n of names) h = this.conv(`${p}.${n}`, h);
    return h;
  }

  private avgPoolBranch(x: Tensor): Tensor {
    return avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false });
  }

  /** FIDInceptionA: [1x1 (64), 5x5 (64), 3x3dbl (96), pool (poolFeatures)] */
  blockA(p: string, x: Tensor): Tensor {
    return concat([
      this.conv(`${p}.branch1x1`, x),
      this.chain(p, ['branch5x5_1', 'branch5x5_2'], x),
      this.chain(p, ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], x),
      this.conv(`${p}.branch_pool`, this.avgPoolBranch(x)),
    ], 1);
  }

  /** InceptionB (grid reduction): [3x3 s2 (384), 3x3dbl s2 (96), max pool 3/2 (input channels)] */
  blockB(p: string, x: Tensor): Tensor {
    return concat([
      this.conv(`${p}.branch3x3`, x),
      this.chain(p, ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], x),
      maxPool2d(x, 3, { stride: 2 }),
    ], 1);
  }

  /** FIDInceptionC: [1x1 (192), 7x7 factorised (192), 7x7dbl factorised (192), pool (192)] */
  blockC(p: string, x: Tensor): Tensor {
    return concat([
      this.conv(`${p}.branch1x1`, x),
      this.chain(p, ['branch7x7_1', 'branch7x7_2', 'branch7x7_3'], x),
      this.chain(p, ['branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5'], x),
      this.conv(`${p}.branch_pool`, this.avgPoolBranch(x)),
    ], 1);
  }

  /** InceptionD (grid reduction): [3x3 s2 (320), 7x7x3 s2 (192), max pool 3/2 (input channels)] */
  blockD(p: string, x: Tensor): Tensor {
    return concat([
      this.chain(p, ['branch3x3_1', 'branch3x3_2'], x),
      this.chain(p, ['branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4'], x),
      maxPool2d(x, 3, { stride: 2 }),
    ], 1);
  }

  /** FIDInceptionE_1 (pool 'avg', count_include_pad = False) / E_2 (pool 'max'):
   *  [1x1 (320), 3x3 split (384 + 384), 3x3dbl split (384 + 384), pool (192)] */
  blockE(p: string, x: Tensor, pool: 'avg' | 'max'): Tensor {
    const t = this.conv(`${p}.branch3x3_1`, x);
    const u = this.chain(p, ['branch3x3dbl_1', 'branch3x3dbl_2'], x);
    const pooled = pool === 'avg' ? this.avgPoolBranch(x) : maxPool2d(x, 3, { stride: 1, padding: 1 });
    return concat([
      this.conv(`${p}.branch1x1`, x),
      this.conv(`${p}.branch3x3_2a`, t), this.conv(`${p}.branch3x3_2b`, t),
      this.conv(`${p}.branch3x3dbl_3a`, u), this.conv(`${p}.branch3x3dbl_3b`, u),
      this.conv(`${p}.branch_pool`, pooled),
    ], 1);
  }

  /**
   * Features of many images, batch by batch, gathered on the host: pool (B·2048) and logits (B·1008 or null)
   * in row-major order. images: float32 (N, C, H, W) on any device (moved batch by batch).
   */
  embed(images: Tensor, opts: InceptionOptions & { batchSize?: number } = {}): { pool: Float32Array; logits: Float32Array | null } {
    const N = images.shape[0], bs = opts.batchSize ?? 50;
    if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`dd2: inception: batchSize must be an integer >= 1, got ${bs}`);
    const pool = new Float32Array(N * INCEPTION_FEATURES);
    const logits = this.fcT ? new Float32Array(N * INCEPTION_CLASSES) : null;
    for (let i = 0; i < N; i += bs) {
      tidy(() => {
        let xb = slice(images, 0, i, Math.min(N, i + bs));
        if (xb.device !== this.device) xb = toDevice(xb, this.device);
        const out = this.forward(xb, opts);
        pool.set(out.pool.toFloat32Array(), i * INCEPTION_FEATURES);
        if (logits && out.logits) logits.set(out.logits.toFloat32Array(), i * INCEPTION_CLASSES);
      });
    }
    return { pool, logits };
  }
}

function expectArray(arrays: ReadonlyMap<string, NamedArray>, key: string, shape: number[], source: string): Float32Array {
  const a = arrays.get(key);
  if (!a) {
    throw new Error(`dd2: loadInception ${source}: missing tensor '${key}' (expected shape ${fmtShape(shape)}); ` +
      `the file must use pytorch-fid's state-dict names (see docs/inception.md)`);
  }
  if (a.shape.length !== shape.length || a.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`dd2: loadInception ${source}: tensor '${key}' has shape ${fmtShape(a.shape)}, expected ${fmtShape(shape)}`);
  }
  if (a.dtype !== 'F32' && a.dtype !== 'BF16') {
    throw new Error(`dd2: loadInception ${source}: tensor '${key}' has dtype ${a.dtype}, expected F32`);
  }
  return toFloat32(a);
}

/**
 * Builds the network from a pytorch-fid state dict: checks every key and shape (fc.weight is optional:
 * without it logits are null), folds BN (eps 1e-3) into each convolution in float64:
 * w' = w · γ / √(σ² + ε), b' = β − μ · γ / √(σ² + ε).
 */
export function inceptionFromState(arrays: ReadonlyMap<string, NamedArray>,
  opts: { device?: Device; source?: string } = {}): InceptionV3 {
  const source = opts.source ?? '<state dict>', device = opts.device ?? getDefaultDevice();
  const convs = new Map<string, FoldedConv>();
  let fcT: Tensor | null = null;
  try {
    for (const [name, spec] of inceptionConvSpecs()) {
      const w = expectArray(arrays, `${name}.conv.weight`, [spec.cout, spec.cin, spec.kh, spec.kw], source);
      const [gamma, beta, mu, v] = ['weight', 'bias', 'running_mean', 'running_var']
        .map((k) => expectArray(arrays, `${name}.bn.${k}`, [spec.cout], source));
      const per = spec.cin * spec.kh * spec.kw;
      const wf = new Float32Array(w.length), bf = new Float32Array(spec.cout);
      for (let o = 0; o < spec.cout; o++) {
        if (!(v[o] + BN_EPS > 0)) {
          throw new Error(`dd2: loadInception ${source}: '${name}.bn.running_var'[${o}] = ${v[o]} gives a non-positive variance`);
        }
        const s = gamma[o] / Math.sqrt(v[o] + BN_EPS);
        for (let i = o * per; i < (o + 1) * per; i++) wf[i] = w[i] * s;
        bf[o] = beta[o] - mu[o] * s;
      }
      convs.set(name, {
        spec,
        w: keep(tensor(wf, [spec.cout, spec.cin, spec.kh, spec.kw], { device })),
        b: keep(tensor(bf, [spec.cout], { device })),
      });
    }
    if (arrays.has('fc.weight')) {
      const fw = expectArray(arrays, 'fc.weight', [INCEPTION_CLASSES, INCEPTION_FEATURES], source);
      if (arrays.has('fc.bias')) expectArray(arrays, 'fc.bias', [INCEPTION_CLASSES], source);
      const t = new Float32Array(fw.length);   // (1008, 2048) -> (2048, 1008)
      for (let k = 0; k < INCEPTION_CLASSES; k++) {
        for (let e = 0; e < INCEPTION_FEATURES; e++) t[e * INCEPTION_CLASSES + k] = fw[k * INCEPTION_FEATURES + e];
      }
      fcT = keep(tensor(t, [INCEPTION_FEATURES, INCEPTION_CLASSES], { device }));
    }
  } catch (e) {
    for (const c of convs.values()) { c.w.dispose(); c.b.dispose(); }
    fcT?.dispose();
    throw e;
  }
  return new InceptionV3(convs, fcT, device);
}

/** Loads a safetensors file with pytorch-fid key names (scripts/convert-inception.py writes one). */
export function loadInception(path: string, opts: { device?: Device } = {}): InceptionV3 {
  const { arrays } = readSafetensors(path);
  return inceptionFromState(arrays, { device: opts.device, source: path });
}

/** Deterministic PRNG (mulberry32) for randomInceptionWeights. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random state dict with pytorch-fid names and shapes, for tests: conv weights N(0, 2 / fan_in) (He, so
 * activations keep their scale through ReLUs), BN γ ∈ [0.5, 1.5], β, μ ∈ [-0.1, 0.1], σ² ∈ [0.5, 1.5],
 * fc N(0, 1 / 2048), fc.bias ∈ [-0.1, 0.1].
 */
export function randomInceptionWeights(seed: number): Map<string, NamedArray> {
  const next = rng(seed);
  const normal = (n: number, std: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.max(next(), 1e-12), v = next();
      a[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
    return a;
  };
  const uniform = (n: number, lo: number, hi: number): Float32Array => Float32Array.from({ length: n }, () => lo + (hi - lo) * next());
  const out = new Map<string, NamedArray>();
  for (const [key, shape] of inceptionStateShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (key.endsWith('.conv.weight')) data = normal(n, Math.sqrt(2 / (shape[1] * shape[2] * shape[3])));
    else if (key.endsWith('.bn.weight') || key.endsWith('.bn.running_var')) data = uniform(n, 0.5, 1.5);
    else if (key === 'fc.weight') data = normal(n, Math.sqrt(1 / INCEPTION_FEATURES));
    else data = uniform(n, -0.1, 0.1);
    out.set(key, { dtype: 'F32', shape, data });
  }
  return out;
}

/** uint8 images (B, H, W, C) NHWC, C = 1 or 3 -> float32 (B, C, H, W) in [0, 1] (v / 255, as ToTensor). */
export function imagesFromUint8(data: Uint8Array, shape: readonly [number, number, number, number],
  opts: { device?: Device } = {}): Tensor {
  const [B, H, W, C] = shape;
  if (data.length !== B * H * W * C || (C !== 1 && C !== 3)) {
    throw new RangeError(`dd2: imagesFromUint8: ${data.length} bytes do not form (B, H, W, C) = ${fmtShape([...shape])} with C = 1 or 3`);
  }
  const out = new Float32Array(data.length), HW = H * W;
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < HW; p++) {
      for (let c = 0; c < C; c++) out[(b * C + c) * HW + p] = data[(b * HW + p) * C + c] / 255;
    }
  }
  return tensor(out, [B, C, H, W], { device: opts.device });
}
