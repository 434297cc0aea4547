// Class-conditional GPT in LlamaGen's design (follows LlamaGen autoregressive/models/gpt.py, parameter
// names and shapes included): class token prefix (with a null class row for classifier-free guidance),
// token embedding, pre-norm blocks with RMSNorm, fused causal attention with 2D RoPE, SwiGLU MLP, a
// final RMSNorm and a bias-free output head. Sequence [class, t_0 .. t_{N-2}] predicts t_0 .. t_{N-1}.
// Letters: B batch, T positions, N tokens per image (h·w), E model width (dim), H heads, D head dim,
// F SwiGLU hidden width, V vocabulary (codebook size).
import { Tensor } from '../tensor/tensor.js';
import { empty, tensor } from '../tensor/create.js';
import { keep, noGrad } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import { check } from '../tensor/kernel.js';
import { Generator } from '../tensor/random.js';
import type { Device } from '../tensor/dtype.js';
import { add, mul, silu } from '../tensor/ops/elementwise.js';
import { concat, contiguous, permute, reshape, slice } from '../tensor/ops/shape.js';
import { attention } from '../tensor/ops/attention.js';
import { dropout } from '../tensor/ops/dropout.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { normal } from '../nn/init.js';
import { Rope2D, type RopePrefixMode } from './rope.js';
import { loadModelFile, type CheckpointMeta } from '../io/checkpoint.js';

export interface GPTConfig {
  /** V: codebook size of the tokenizer */
  vocabSize: number;
  numClasses: number;
  /** token grid h×w (LlamaGen: block_size = h·w, square) */
  gridH: number;
  gridW: number;
  dim: number;
  nLayer: number;
  nHead: number;
  /** SwiGLU hidden width F = find_multiple(int(ffnDimMultiplier · int(2·4·dim/3)), multipleOf) */
  multipleOf: number;
  ffnDimMultiplier: number | null;
  ropeBase: number;
  /** RoPE rows of the class position: 'zero' as LlamaGen, or 'identity' */
  ropePrefix: RopePrefixMode;
  normEps: number;
  initializerRange: number;
  classDropoutProb: number;
  tokenDropoutP: number;
  residDropoutP: number;
  ffnDropoutP: number;
}

export interface GPTSize { nLayer: number; dim: number; nHead: number; multipleOf: number; dropout: number }

/**
 * Named sizes. GPT-B/L/XL are LlamaGen's class-conditional shapes (111M / 343M / 775M with V = 16384),
 * with its default dropouts 0.1. tiny and small are for MNIST-scale token grids: the SwiGLU multiple drops
 * to 32 so the hidden width stays near 8/3·dim (352 and 704). tiny has no dropout (its short CPU runs
 * underfit); small keeps 0.1, because on the GPU it overfits Fashion-MNIST without it (test NLL 5.02
 * nats/token after 6000 steps at dropout 0 against 3.65 after 4000 steps at 0.1; BENCHMARKS.md).
 */
export const GPT_SIZES: Readonly<Record<string, GPTSize>> = {
  tiny: { nLayer: 4, dim: 128, nHead: 4, multipleOf: 32, dropout: 0 },
  small: { nLayer: 6, dim: 256, nHead: 8, multipleOf: 32, dropout: 0.1 },
  'GPT-B': { nLayer: 12, dim: 768, nHead: 12, multipleOf: 256, dropout: 0.1 },
  'GPT-L': { nLayer: 24, dim: 1024, nHead: 16, multipleOf: 256, dropout: 0.1 },
  'GPT-XL': { nLayer: 36, dim: 1280, nHead: 20, multipleOf: 256, dropout: 0.1 },
};

/** Looks a size up by name: 'tiny', 'small', 'GPT-B' (also 'gpt-b', 'B'), ... */
export function gptSize(name: string): GPTSize {
  const key = Object.keys(GPT_SIZES).find((k) => [k.toLowerCase(), k.replace(/^GPT-/, '').toLowerCase()]
    .includes(name.toLowerCase()));
  if (!key) throw new RangeError(`dd2: unknown GPT size '${name}' (known: ${Object.keys(GPT_SIZES).join(', ')})`);
  return GPT_SIZES[key];
}

export interface GPTDataShape { vocabSize: number; numClasses: number; gridH: number; gridW: number }

/** A full config from a named size, the data's shape, and overrides. */
export function gptConfig(size: string, data: GPTDataShape, over: Partial<GPTConfig> = {}): GPTConfig {
  const s = gptSize(size);
  return resolveGPTConfig({
    ...data, dim: s.dim, nLayer: s.nLayer, nHead: s.nHead, multipleOf: s.multipleOf,
    tokenDropoutP: s.dropout, residDropoutP: s.dropout, ffnDropoutP: s.dropout, ...over,
  });
}

/** Fills LlamaGen's defaults for missing fields and validates. */
export function resolveGPTConfig(c: GPTDataShape & Pick<GPTConfig, 'dim' | 'nLayer' | 'nHead'> & Partial<GPTConfig>): GPTConfig {
  const r: GPTConfig = {
    multipleOf: 256, ffnDimMultiplier: null, ropeBase: 10000, ropePrefix: 'zero', normEps: 1e-5,
    initializerRange: 0.02, classDropoutProb: 0.1, tokenDropoutP: 0.1, residDropoutP: 0.1, ffnDropoutP: 0.1, ...c,
  };
  const ints: (keyof GPTConfig)[] = ['vocabSize', 'numClasses', 'gridH', 'gridW', 'dim', 'nLayer', 'nHead', 'multipleOf'];
  for (const k of ints) {
    if (!Number.isInteger(r[k]) || (r[k] as number) < 1) {
      throw new RangeError(`dd2: GPT config: ${k} must be a positive integer, got ${r[k]}`);
    }
  }
  if (r.dim % r.nHead !== 0 || (r.dim / r.nHead) % 4 !== 0) {
    throw new RangeError(`dd2: GPT config: dim ${r.dim} / nHead ${r.nHead} must be a whole head dim divisible by 4 (2D RoPE)`);
  }
  for (const k of ['classDropoutProb', 'tokenDropoutP', 'residDropoutP', 'ffnDropoutP'] as const) {
    if (!(r[k] >= 0 && r[k] < 1)) throw new RangeError(`dd2: GPT config: ${k} must be in [0, 1), got ${r[k]}`);
  }
  if (r.ropePrefix !== 'zero' && r.ropePrefix !== 'identity') {
    throw new RangeError(`dd2: GPT config: ropePrefix must be 'zero' or 'identity', got '${r.ropePrefix}'`);
  }
  return r;
}

/** Names and shapes of the state dict of a GPT with config c, in LlamaGen's (PyTorch) order. */
export function gptStateShapes(c: GPTConfig): [string, number[]][] {
  const E = c.dim, F = swigluHidden(c);
  const out: [string, number[]][] = [
    ['cls_embedding.embedding_table.weight', [c.numClasses + (c.classDropoutProb > 0 ? 1 : 0), E]],
    ['tok_embeddings.weight', [c.vocabSize, E]],
  ];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `layers.${i}.`;
    out.push([`${p}attention.wqkv.weight`, [3 * E, E]], [`${p}attention.wo.weight`, [E, E]],
      [`${p}feed_forward.w1.weight`, [F, E]], [`${p}feed_forward.w3.weight`, [F, E]], [`${p}feed_forward.w2.weight`, [E, F]],
      [`${p}attention_norm.weight`, [E]], [`${p}ffn_norm.weight`, [E]]);
  }
  out.push(['norm.weight', [E]], ['output.weight', [c.vocabSize, E]]);
  return out;
}

/** LlamaGen FeedForward: F = find_multiple(int(2 · 4·dim / 3) [· ffnDimMultiplier], multipleOf). */
export function swigluHidden(c: Pick<GPTConfig, 'dim' | 'multipleOf' | 'ffnDimMultiplier'>): number {
  let h = Math.trunc((2 * 4 * c.dim) / 3);
  if (c.ffnDimMultiplier != null) h = Math.trunc(c.ffnDimMultiplier * h);
  return h % c.multipleOf === 0 ? h : h + c.multipleOf - (h % c.multipleOf);
}

/** Overwrites a parameter with N(0, std²) values (LlamaGen's _init_weights) or zeros (std 0). */
function reinit(p: Tensor, std: number, gen: Generator): void {
  noGrad(() => {
    const src = std > 0 ? normal(p.shape, std, 0, gen) : tensor(new Float32Array(p.size), p.shape, { device: p.device });
    if (p.size) native.storage_copy(p.storage.id, 0, src.id, 0, p.size * 4);
    src.dispose();
  });
}

/** Pre-allocated keys and values per layer, (B, H, Tmax, D) each, filled position by position. */
export class KVCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];

  constructor(readonly batch: number, readonly heads: number, readonly maxLen: number, readonly headDim: number,
              layers: number, device?: Device) {
    for (let i = 0; i < layers; i++) {
      this.k.push(keep(empty([batch, heads, maxLen, headDim], { device })));
      this.v.push(keep(empty([batch, heads, maxLen, headDim], { device })));
    }
  }

  /** Writes k, v (B, H, T, D) at positions start .. start+T-1 of layer i's cache. */
  write(i: number, k: Tensor, v: Tensor, start: number): void {
    const dst = this.k[i];
    const T = k.shape[2];
    if (k.rank !== 4 || k.shape[0] !== this.batch || k.shape[1] !== this.heads || k.shape[3] !== this.headDim ||
        start < 0 || start + T > this.maxLen || v.rank !== 4 || v.shape.some((d, j) => d !== k.shape[j])) {
      throw new RangeError(`dd2: KVCache.write: keys ${k.describe()} / values ${v.describe()} at ${start} do not fit ` +
        `the cache ${dst.describe()}`);
    }
    for (const [c, x] of [[dst, k], [this.v[i], v]] as const) {
      check('KVCache.write', ['copy_strided'], c, x);
      native.copy_strided(c.storage.id, start * this.headDim, [...c.strides], x.storage.id, x.offset, [...x.strides],
        [...x.shape]);
    }
  }

  /** Views of layer i's keys and values at positions 0 .. end-1. */
  read(i: number, end: number): [Tensor, Tensor] {
    return [slice(this.k[i], 2, 0, end), slice(this.v[i], 2, 0, end)];
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

/** Options of one pass through the layers. */
export interface PassOptions {
  /** position of the first row of h (0 = class token); a cache is written there */
  start?: number;
  cache?: KVCache;
  /** dropout masks and class dropout (needed in training mode when any dropout is > 0) */
  gen?: Generator;
}

/** Class labels -> (B, 1, E); label numClasses is the null (unconditional) class. */
export class LabelEmbedder extends Module {
  readonly embedding_table: Embedding;

  constructor(readonly numClasses: number, dim: number, readonly dropoutProb: number, gen: Generator, std: number) {
    super();
    this.embedding_table = this.registerModule('embedding_table',
      new Embedding(numClasses + (dropoutProb > 0 ? 1 : 0), dim, { std, gen }));
  }

  /** labels int32 (B); in training with a generator each label becomes the null class with prob p. */
  forward(labels: Tensor, gen?: Generator): Tensor {
    let lab = labels;
    if (this.training && this.dropoutProb > 0) {
      if (!gen) throw new Error('dd2: GPT: class dropout in training mode needs a generator (opts.gen)');
      const u = gen.uniform([labels.size], labels.device);
      const uh = u.toFloat32Array(), host = labels.toInt32Array();
      u.dispose();
      for (let i = 0; i < host.length; i++) if (uh[i] < this.dropoutProb) host[i] = this.numClasses;
      lab = tensor(host, labels.shape, { device: labels.device });
    }
    const e = this.embedding_table.forward(lab);                                     // (B, E)
    return reshape(e, [labels.size, 1, e.shape[1]]);
  }
}

export class Attention extends Module {
  readonly wqkv: Linear;
  readonly wo: Linear;

  constructor(readonly cfg: GPTConfig, gen: Generator) {
    super();
    this.wqkv = this.registerModule('wqkv', new Linear(cfg.dim, 3 * cfg.dim, { bias: false, gen }));
    this.wo = this.registerModule('wo', new Linear(cfg.dim, cfg.dim, { bias: false, gen }));
  }

  /** x (B, T, E) at positions start.. -> (B, T, E); causal over the cache (if any) plus these T rows. */
  forward(x: Tensor, rope: Rope2D, layer: number, o: PassOptions): Tensor {
    const [B, T, E] = x.shape;
    const H = this.cfg.nHead, D = E / H, start = o.start ?? 0;
    const qkv = contiguous(permute(reshape(this.wqkv.forward(x), [B, T, 3, H, D]), [2, 0, 3, 1, 4]));  // (3, B, H, T, D)
    const part = (i: number): Tensor => reshape(slice(qkv, 0, i, i + 1), [B, H, T, D]);
    const q = rope.apply(part(0), start);
    let k = rope.apply(part(1), start), v = part(2);
    if (o.cache) {
      o.cache.write(layer, k, v, start);
      [k, v] = o.cache.read(layer, start + T);
    }
    const a = attention(q, k, v, { causal: true });                                 // (B, H, T, D)
    const y = this.wo.forward(reshape(contiguous(permute(a, [0, 2, 1, 3])), [B, T, E]));
    return o.gen ? dropout(y, this.cfg.residDropoutP, o.gen, this.training) : y;
  }
}

export class FeedForward extends Module {
  readonly w1: Linear;
  readonly w3: Linear;
  readonly w2: Linear;

  constructor(readonly cfg: GPTConfig, gen: Generator) {
    super();
    const F = swigluHidden(cfg);
    this.w1 = this.registerModule('w1', new Linear(cfg.dim, F, { bias: false, gen }));
    this.w3 = this.registerModule('w3', new Linear(cfg.dim, F, { bias: false, gen }));
    this.w2 = this.registerModule('w2', new Linear(F, cfg.dim, { bias: false, gen }));
  }

  /** w2(silu(w1 x) ⊙ w3 x): (B, T, E) -> (B, T, E) */
  forward(x: Tensor, gen?: Generator): Tensor {
    const y = this.w2.forward(mul(silu(this.w1.forward(x)), this.w3.forward(x)));
    return gen ? dropout(y, this.cfg.ffnDropoutP, gen, this.training) : y;
  }
}

export class TransformerBlock extends Module {
  readonly attention: Attention;
  readonly feed_forward: FeedForward;
  readonly attention_norm: RMSNorm;
  readonly ffn_norm: RMSNorm;

  constructor(cfg: GPTConfig, gen: Generator) {
    super();
    this.attention = this.registerModule('attention', new Attention(cfg, gen));
    this.feed_forward = this.registerModule('feed_forward', new FeedForward(cfg, gen));
    this.attention_norm = this.registerModule('attention_norm', new RMSNorm(cfg.dim, { eps: cfg.normEps }));
    this.ffn_norm = this.registerModule('ffn_norm', new RMSNorm(cfg.dim, { eps: cfg.normEps }));
  }

  forward(x: Tensor, rope: Rope2D, layer: number, o: PassOptions): Tensor {
    const h = add(x, this.attention.forward(this.attention_norm.forward(x), rope, layer, o));
    return add(h, this.feed_forward.forward(this.ffn_norm.forward(h), o.gen));
  }
}

export class GPT extends Module {
  readonly cfg: GPTConfig;
  readonly cls_embedding: LabelEmbedder;
  readonly tok_embeddings: Embedding;
  readonly layers: ModuleList<TransformerBlock>;
  readonly norm: RMSNorm;
  readonly output: Linear;
  readonly rope: Rope2D;

  /** Weights as LlamaGen initialises them: N(0, 0.02²) for every linear and embedding, output 0. */
  constructor(cfg: GPTConfig, gen: Generator) {
    super();
    this.cfg = resolveGPTConfig(cfg);
    const c = this.cfg, std = c.initializerRange;
    this.cls_embedding = this.registerModule('cls_embedding', new LabelEmbedder(c.numClasses, c.dim, c.classDropoutProb, gen, std));
    this.tok_embeddings = this.registerModule('tok_embeddings', new Embedding(c.vocabSize, c.dim, { std, gen }));
    this.layers = this.registerModule('layers',
      new ModuleList(Array.from({ length: c.nLayer }, () => new TransformerBlock(c, gen))));
    this.norm = this.registerModule('norm', new RMSNorm(c.dim, { eps: c.normEps }));
    this.output = this.registerModule('output', new Linear(c.dim, c.vocabSize, { bias: false, gen }));
    for (const [name, p] of this.namedParameters()) {
      if (name.startsWith('layers.') && p.rank === 2) reinit(p, std, gen);
    }
    reinit(this.output.weight, 0, gen);
    this.rope = new Rope2D(c.gridH, c.gridW, c.dim / c.nHead, { base: c.ropeBase, prefix: 1, prefixMode: c.ropePrefix });
    this.registerBuffer('rope_c', this.rope.C, false);
    this.registerBuffer('rope_s', this.rope.S, false);
    this.registerBuffer('rope_p', this.rope.P, false);
  }

  /** Where the weights live (inputs must be there too). */
  get device(): Device {
    return this.tok_embeddings.weight.device;
  }

  /** Tokens per image (h·w). */
  get seqLen(): number {
    return this.cfg.gridH * this.cfg.gridW;
  }

  /** [class embedding, token embeddings]: labels int32 (B), tokens int32 (B, n) or null -> (B, 1+n, E). */
  embed(labels: Tensor, tokens: Tensor | null, gen?: Generator): Tensor {
    const cls = this.cls_embedding.forward(labels, gen);
    const h = tokens && tokens.shape[1] > 0 ? concat([cls, this.tok_embeddings.forward(tokens)], 1) : cls;
    return this.tokenDropout(h, gen);
  }

  /** Embeddings of tokens only, (B, n) -> (B, n, E) (cached decoding). */
  embedTokens(tokens: Tensor, gen?: Generator): Tensor {
    return this.tokenDropout(this.tok_embeddings.forward(tokens), gen);
  }

  private tokenDropout(h: Tensor, gen?: Generator): Tensor {
    if (this.training && this.cfg.tokenDropoutP > 0 && !gen) {
      throw new Error('dd2: GPT: token dropout in training mode needs a generator (opts.gen)');
    }
    return gen ? dropout(h, this.cfg.tokenDropoutP, gen, this.training) : h;
  }

  /** The layers and the final norm: h (B, T, E) at positions start.. -> features (B, T, E). */
  features(h: Tensor, o: PassOptions = {}): Tensor {
    const start = o.start ?? 0;
    if (start + h.shape[1] > this.rope.T) {
      throw new RangeError(`dd2: GPT: positions ${start}..${start + h.shape[1] - 1} exceed the ${this.rope.T} of the model`);
    }
    let x = h;
    this.layers.items.forEach((blk, i) => { x = blk.forward(x, this.rope, i, o); });
    return this.norm.forward(x);
  }

  /** Teacher-forced logits: labels (B), input tokens (B, n) with n <= N-1 -> (B, 1+n, V), row j predicting t_j. */
  forward(labels: Tensor, tokens: Tensor | null, gen?: Generator): Tensor {
    return this.output.forward(this.features(this.embed(labels, tokens, gen), { gen }));
  }

  /** Logits for training on whole images: tokens (B, N) -> (B, N, V), the target of row j is tokens[:, j]. */
  logitsForImages(labels: Tensor, tokens: Tensor, gen?: Generator): Tensor {
    const N = tokens.shape[1];
    return this.forward(labels, N > 1 ? slice(tokens, 1, 0, N - 1) : null, gen);
  }

  /** A cache for B sequences of the full length 1 + N. */
  createCache(batch: number): KVCache {
    const c = this.cfg;
    return new KVCache(batch, c.nHead, 1 + this.seqLen, c.dim / c.nHead, c.nLayer, this.rope.C.device);
  }
}

/** Loads a GPT saved with saveModel (meta kind 'gpt'): the model in eval mode and the checkpoint meta. */
export function loadGPT(path: string): GPT {
  return loadGPTWithMeta(path).model;
}

export function loadGPTWithMeta(path: string): { model: GPT; meta: CheckpointMeta } {
  const { state, shapes, meta } = loadModelFile(path);
  if (meta.kind !== 'gpt') throw new Error(`dd2: loadGPT: ${path} holds a '${meta.kind}' model, not 'gpt'`);
  const model = new GPT(meta.config as GPTConfig, new Generator(0));
  const sd = new Map([...state].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }]));
  model.loadStateDict(sd);
  return { model: model.eval(), meta };
}
