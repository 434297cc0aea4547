// VQ tokenizer in LlamaGen's design (tokenizer/tokenizer_image/vq_model.py), scaled down for small images:
// a convolutional encoder (ResNet blocks, stride-2 downsampling) to a grid of D-dim vectors, each matched by
// cosine to an L2-normalised codebook of K codes (LlamaGen's l2_norm), the straight-through estimator, and a
// mirrored decoder (nearest upsampling + conv). Letters: B batch, C image channels, H/W image size,
// h/w token grid (H/downsample), D code dimension, K codebook size, N = B·h·w latent vectors.
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import { add, addScalar, clamp, log, mul, mulScalar, rsqrt, silu, square, sub } from '../tensor/ops/elementwise.js';
import { argmax, sum } from '../tensor/ops/reduce.js';
import { contiguous, detach, permute, reshape } from '../tensor/ops/shape.js';
import { matmul } from '../tensor/ops/matmul.js';
import { embedding } from '../tensor/ops/index.js';
import { softmax } from '../tensor/ops/softmax.js';
import { fmtShape } from '../tensor/shape.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, GroupNorm } from '../nn/layers.js';
import { Conv2d, Downsample, ResnetBlock, Upsample, groupsFor } from './vq-blocks.js';
import { loadModelFile } from '../io/checkpoint.js';

export interface VQConfig {
  /** input images are imageSize x imageSize with imageChannels channels, scaled to [-1, 1] */
  imageSize: number;
  imageChannels: number;
  /** spatial reduction: a power of two dividing imageSize (28 -> 7 with 4, 28 -> 14 with 2) */
  downsample: number;
  /** base width; level i of the encoder has channels * channelMult[i] channels */
  channels: number;
  /** one entry per resolution level: log2(downsample) + 1 entries */
  channelMult: number[];
  /** ResNet blocks at each level below full resolution (LlamaGen's num_res_blocks; the decoder mirrors them) */
  resBlocks: number;
  /** ResNet blocks at the full-resolution level, where a conv costs 4x what it costs one level down */
  fullResBlocks: number;
  /** width of the encoder output / decoder input before the 1x1 convs to and from the code dimension */
  zChannels: number;
  /** K, number of codes */
  codebookSize: number;
  /** D, dimension of a code (LlamaGen: 8) */
  codeDim: number;
  /** GroupNorm groups (reduced where they do not divide a width) */
  groups: number;
  /** commitment weight beta (LlamaGen and VQ-VAE: 0.25) */
  beta: number;
  /** weight of LlamaGen's entropy term (0 = off) and the temperature of its soft assignment */
  entropyWeight: number;
  entropyTemperature: number;
}

/** Defaults for 28x28 grayscale (MNIST): 7x7 tokens, 512 codes of dimension 8; see lib/train/tokenizer.ts. */
export const defaultVQConfig: VQConfig = {
  imageSize: 28, imageChannels: 1, downsample: 4, channels: 16, channelMult: [1, 2, 4], resBlocks: 1, fullResBlocks: 0,
  zChannels: 64, codebookSize: 512, codeDim: 8, groups: 8, beta: 0.25, entropyWeight: 0, entropyTemperature: 0.01,
};

/** Level widths for a downsampling factor 2^L: channelMult [1, 2, 4, 4, ...] (L + 1 entries). */
export function levelsFor(downsample: number): Pick<VQConfig, 'downsample' | 'channelMult'> {
  const L = Math.log2(downsample);
  if (!Number.isInteger(L) || L < 0) throw new RangeError(`dd2: levelsFor: downsample must be a power of two, got ${downsample}`);
  return { downsample, channelMult: Array.from({ length: L + 1 }, (_, i) => 2 ** Math.min(i, 2)) };
}

export function validateVQConfig(cfg: VQConfig): void {
  const bad = (msg: string): never => { throw new RangeError(`dd2: VQConfig: ${msg} (config ${JSON.stringify(cfg)})`); };
  const posInt = (v: number, name: string): void => { if (!Number.isInteger(v) || v < 1) bad(`${name} must be a positive integer, got ${v}`); };
  for (const k of ['imageSize', 'imageChannels', 'downsample', 'channels', 'zChannels', 'codebookSize',
    'codeDim', 'groups'] as const) posInt(cfg[k], k);
  const levels = Math.log2(cfg.downsample);
  if (!Number.isInteger(levels)) bad(`downsample must be a power of two, got ${cfg.downsample}`);
  if (cfg.imageSize % cfg.downsample !== 0) bad(`downsample ${cfg.downsample} does not divide imageSize ${cfg.imageSize}`);
  if (!Array.isArray(cfg.channelMult) || cfg.channelMult.length !== levels + 1) {
    bad(`channelMult needs log2(downsample) + 1 = ${levels + 1} entries, got ${JSON.stringify(cfg.channelMult)}`);
  }
  cfg.channelMult.forEach((m, i) => posInt(m, `channelMult[${i}]`));
  for (const k of ['resBlocks', 'fullResBlocks'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 0) bad(`${k} must be an integer >= 0, got ${cfg[k]}`);
  }
  if (!(cfg.beta >= 0) || !(cfg.entropyWeight >= 0) || !(cfg.entropyTemperature > 0)) {
    bad('beta and entropyWeight must be >= 0 and entropyTemperature > 0');
  }
}

/** Mean over all elements (or one axis). reduce.ts's mean() disposes its intermediate sum, which cuts the
 *  gradient (Tensor.dispose clears the node), so the losses here use sum · 1/n. */
export function meanOf(x: Tensor, axis?: number): Tensor {
  return mulScalar(sum(x, axis), 1 / (axis === undefined ? x.size : x.shape[axis < 0 ? x.rank + axis : axis]));
}

/** Rows of x (..., D) scaled to unit L2 norm: x / sqrt(|x|² + 1e-12) (differentiable). */
export function l2Normalize(x: Tensor): Tensor {
  return mul(x, rsqrt(addScalar(sum(square(x), -1, true), 1e-12)));
}

/** Index of the most similar code for each row: zn (N, D), en (K, D) unit rows -> int32 (N). No gradient. */
export function nearestCode(zn: Tensor, en: Tensor): Tensor {
  return noGrad(() => tidy(() => argmax(matmul(detach(zn), detach(en), { transB: true }), -1)));   // argmax of (N, K) cosines
}

/** One resolution level: ResNet blocks at width `width`, then a down- (encoder) or up-sampling (decoder) step
 *  to width `next`, or nothing at the innermost / outermost level. */
class Level extends Module {
  readonly res: ModuleList<ResnetBlock>;
  readonly resample: Downsample | Upsample | null;
  constructor(width: number, blocks: number, resample: 'down' | 'up' | null, next: number, groups: number, gen: Generator) {
    super();
    this.res = this.registerModule('res', new ModuleList(Array.from({ length: blocks }, () => new ResnetBlock(width, width, groups, gen))));
    this.resample = resample === 'down' ? this.registerModule('downsample', new Downsample(width, next, gen))
      : resample === 'up' ? this.registerModule('upsample', new Upsample(width, next, gen)) : null;
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const blk of this.res) h = blk.forward(h);
    return this.resample ? this.resample.forward(h) : h;
  }
}

/**
 * Encoder: conv_in -> levels 0..L-1 (full resolution first) -> mid block -> GroupNorm, SiLU, conv_out.
 * Decoder: conv_in -> mid block -> levels L-1..0 -> GroupNorm, SiLU, conv_out. Level i has width
 * channels · channelMult[i]; resampling convs move between the widths of neighbouring levels.
 */
class ConvStack extends Module {
  readonly convIn: Conv2d;
  readonly mid!: ResnetBlock;
  readonly levels: ModuleList<Level>;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;
  private readonly isEncoder: boolean;

  constructor(cfg: VQConfig, kind: 'encoder' | 'decoder', gen: Generator) {
    super();
    this.isEncoder = kind === 'encoder';
    const w = cfg.channelMult.map((m) => m * cfg.channels);
    const L = w.length, g = cfg.groups;
    const [cin, first, last, cout] = this.isEncoder ? [cfg.imageChannels, w[0], w[L - 1], cfg.zChannels]
      : [cfg.zChannels, w[L - 1], w[0], cfg.imageChannels];
    this.convIn = this.registerModule('conv_in', new Conv2d(cin, first, 3, gen, 1, 1));
    const blocks = (i: number): number => (i === 0 ? cfg.fullResBlocks : cfg.resBlocks);
    const mid = (): ResnetBlock => this.registerModule('mid', new ResnetBlock(w[L - 1], w[L - 1], g, gen));
    if (!this.isEncoder) this.mid = mid();                       // registration order = LlamaGen's order
    const levels = this.isEncoder
      ? w.map((wi, i) => new Level(wi, blocks(i), i < L - 1 ? 'down' : null, w[i + 1], g, gen))
      : w.map((_, j) => L - 1 - j).map((i) => new Level(w[i], blocks(i), i > 0 ? 'up' : null, w[i - 1], g, gen));
    this.levels = this.registerModule('conv_blocks', new ModuleList(levels));
    if (this.isEncoder) this.mid = mid();
    this.normOut = this.registerModule('norm_out', new GroupNorm(groupsFor(last, g), last));
    this.convOut = this.registerModule('conv_out', new Conv2d(last, cout, 3, gen, 1, 1));
  }

  forward(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    if (!this.isEncoder) h = this.mid.forward(h);
    for (const lev of this.levels) h = lev.forward(h);
    if (this.isEncoder) h = this.mid.forward(h);
    return this.convOut.forward(silu(this.normOut.forward(h)));
  }
}

/** What encode() returns. The loss terms are scalars; commitLoss already includes beta. */
export interface VQEncoding {
  /** (N, D) L2-normalised encoder outputs, rows in (b, i, j) raster order */
  z: Tensor;
  /** (B, D, h, w) straight-through quantised latents z + sg(q - z), the decoder's input */
  zq: Tensor;
  /** int32 (B, h, w) code indices */
  idx: Tensor;
  /** mean |q - sg(z)|² (moves the codes) */
  codebookLoss: Tensor;
  /** beta · mean |z - sg(q)|² (moves the encoder) */
  commitLoss: Tensor;
  /** LlamaGen's entropy term (mean per-vector entropy − entropy of the mean assignment), null when off */
  entropyLoss: Tensor | null;
}

export class VQModel extends Module {
  readonly cfg: VQConfig;
  readonly encoder: ConvStack;
  readonly quantConv: Conv2d;
  readonly codebook: Embedding;
  readonly postQuantConv: Conv2d;
  readonly decoder: ConvStack;

  /** Weights are drawn from a Generator seeded with `seed`; codebook rows start as random unit vectors. */
  constructor(cfg: VQConfig, seed = 0) {
    super();
    validateVQConfig(cfg);
    this.cfg = { ...cfg, channelMult: [...cfg.channelMult] };
    const gen = new Generator(seed);
    this.encoder = this.registerModule('encoder', new ConvStack(cfg, 'encoder', gen));
    this.quantConv = this.registerModule('quant_conv', new Conv2d(cfg.zChannels, cfg.codeDim, 1, gen));
    const quantize = this.registerModule('quantize', new Module());
    this.codebook = quantize.registerModule('embedding', new Embedding(cfg.codebookSize, cfg.codeDim, { std: 1, gen }));
    const unit = noGrad(() => tidy(() => l2Normalize(this.codebook.weight).toFloat32Array()));
    this.setCodes(Array.from({ length: cfg.codebookSize }, (_, k) => k), unit);
    this.postQuantConv = this.registerModule('post_quant_conv', new Conv2d(cfg.codeDim, cfg.zChannels, 1, gen));
    this.decoder = this.registerModule('decoder', new ConvStack(cfg, 'decoder', gen));
  }

  /** (h, w), the token grid of one image. */
  get gridSize(): [number, number] {
    const s = this.cfg.imageSize / this.cfg.downsample;
    return [s, s];
  }

  get codebookSize(): number {
    return this.cfg.codebookSize;
  }

  /** The L2-normalised codebook (K, D) (differentiable w.r.t. the raw codebook). */
  codes(): Tensor {
    return l2Normalize(this.codebook.weight);
  }

  /** Overwrites codebook rows `ks` with the vectors in `rows` (ks.length x D values, row-major). */
  setCodes(ks: readonly number[], rows: Float32Array): void {
    const { codebookSize: K, codeDim: D } = this.cfg;
    if (rows.length !== ks.length * D) throw new RangeError(`dd2: VQModel.setCodes: ${ks.length} codes need ${ks.length * D} values, got ${rows.length}`);
    const w = this.codebook.weight;
    ks.forEach((k, i) => {
      if (!Number.isInteger(k) || k < 0 || k >= K) throw new RangeError(`dd2: VQModel.setCodes: code ${k} outside [0, ${K})`);
      native.storage_write(w.storage.id, (w.offset + k * D) * 4, rows.subarray(i * D, (i + 1) * D));
    });
  }

  private checkImages(x: Tensor): void {
    const { imageChannels: C, imageSize: S } = this.cfg;
    if (x.rank !== 4 || x.shape[1] !== C || x.shape[2] !== S || x.shape[3] !== S) {
      throw new RangeError(`dd2: VQModel.encode: images ${fmtShape(x.shape)} must be (B, ${C}, ${S}, ${S})`);
    }
  }

  /** x (B, C, H, W) in [-1, 1] -> codes, straight-through latents and the quantisation losses. */
  encode(x: Tensor): VQEncoding {
    this.checkImages(x);
    const z4 = this.quantConv.forward(this.encoder.forward(x));             // (B, D, h, w)
    const [B, D, h, w] = z4.shape;
    const z = l2Normalize(reshape(contiguous(permute(z4, [0, 2, 3, 1])), [B * h * w, D]));   // (N, D)
    const en = this.codes();                                                // (K, D)
    const idxN = nearestCode(z, en);                                        // (N)
    const q = embedding(en, idxN);                                          // (N, D), gradient to the codebook
    const codebookLoss = meanOf(square(sub(q, detach(z))));
    const commitLoss = mulScalar(meanOf(square(sub(z, detach(q)))), this.cfg.beta);
    const entropyLoss = this.cfg.entropyWeight > 0 ? this.entropy(z, en) : null;
    const zqN = add(z, noGrad(() => sub(q, z)));                           // straight-through estimator
    const zq = contiguous(permute(reshape(zqN, [B, h, w, D]), [0, 3, 1, 2]));
    return { z, zq, idx: reshape(idxN, [B, h, w]), codebookLoss, commitLoss, entropyLoss };
  }

  /** weight · (mean_n H(p_n) − H(mean_n p_n)), p_n = softmax(z_n · codes / temperature) (LlamaGen). */
  private entropy(z: Tensor, en: Tensor): Tensor {
    const p = softmax(mulScalar(matmul(z, en, { transB: true }), 1 / this.cfg.entropyTemperature));   // (N, K)
    const plogp = (t: Tensor): Tensor => mul(t, log(addScalar(t, 1e-5)));
    const perVector = mulScalar(sum(plogp(p), -1), -1);                    // (N)
    const avg = meanOf(p, 0);                                                 // (K)
    const ofMean = mulScalar(sum(plogp(avg)), -1);
    return mulScalar(sub(meanOf(perVector), ofMean), this.cfg.entropyWeight);
  }

  /** zq (B, D, h, w) -> reconstruction (B, C, H, W), unclamped. */
  decode(zq: Tensor): Tensor {
    return this.decoder.forward(this.postQuantConv.forward(zq));
  }

  /** int32 codes (B, h, w) -> images (B, C, H, W) clamped to [-1, 1]. */
  decodeIndices(idx: Tensor): Tensor {
    const [h, w] = this.gridSize;
    if (idx.dtype !== 'int32' || idx.rank !== 3 || idx.shape[1] !== h || idx.shape[2] !== w) {
      throw new RangeError(`dd2: VQModel.decodeIndices: indices ${idx.describe()} must be int32 (B, ${h}, ${w})`);
    }
    const q = embedding(this.codes(), idx);                                 // (B, h, w, D)
    return clamp(this.decode(contiguous(permute(q, [0, 3, 1, 2]))), -1, 1);
  }

  /** Encode, quantise and decode: the training forward pass. */
  forward(x: Tensor): VQEncoding & { recon: Tensor } {
    const enc = this.encode(x);
    return { ...enc, recon: this.decode(enc.zq) };
  }
}

/** Loads a tokenizer written by saveModel with meta kind 'vq'. */
export function loadVQ(path: string): VQModel {
  const { state, shapes, meta } = loadModelFile(path);
  if (meta.kind !== 'vq') throw new Error(`dd2: loadVQ: ${path} holds a '${meta.kind}' model, not a VQ tokenizer ('vq')`);
  const model = new VQModel({ ...defaultVQConfig, ...(meta.config as Partial<VQConfig>) });
  try {
    model.loadStateDict(new Map([...state].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }])));
  } catch (e) {
    model.dispose();
    throw new Error(`dd2: loadVQ: ${path}: ${(e as Error).message}`);
  }
  return model.eval();
}

/** Code usage over a set of assignments: codes used at least once, their fraction, and the perplexity
 *  exp(−Σ p_k log p_k) of the assignment frequencies p (K means uniform use of all codes). */
export function usageStats(counts: ArrayLike<number>): { used: number; fraction: number; perplexity: number } {
  let total = 0, used = 0;
  for (let k = 0; k < counts.length; k++) { total += counts[k]; if (counts[k] > 0) used++; }
  let ent = 0;
  for (let k = 0; k < counts.length; k++) {
    if (counts[k] > 0) { const p = counts[k] / total; ent -= p * Math.log(p); }
  }
  return { used, fraction: counts.length ? used / counts.length : 0, perplexity: Math.exp(ent) };
}
