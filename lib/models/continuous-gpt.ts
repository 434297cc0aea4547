// The continuous-input teacher of DD2 (METHOD §5.1): LlamaGen's GPT with its token embedding table
// replaced by an input MLP tok_mlp: R^C -> R^E (Linear C→hidden, SiLU, Linear hidden→E), so that it reads
// continuous code vectors instead of token indices. Everything else (class token with a null class row,
// pre-norm blocks with 2D RoPE, final RMSNorm, output head over V codes) is the GPT of gpt.ts with the same
// parameter names at top level: cls_embedding, tok_mlp.{0,2}, layers, norm, output. Sequence
// [class, x_0 .. x_{n-1}] (n <= N-1) gives features (B, 1+n, E) whose row j predicts token j.
// The output head is optional: the AR-diffusion backbone (ar-diffusion.ts) is this model without it.
// Letters: B batch, n input tokens, N tokens per image, C code dim, E width, V codebook size.
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { noGrad } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import { Generator } from '../tensor/random.js';
import type { Device } from '../tensor/dtype.js';
import { concat } from '../tensor/ops/shape.js';
import { dropout } from '../tensor/ops/dropout.js';
import { Module, ModuleList } from '../nn/module.js';
import { Linear, RMSNorm } from '../nn/layers.js';
import { normal } from '../nn/init.js';
import { Rope2D } from './rope.js';
import { TwoLayerMLP } from './mlp-head.js';
import { GPT, KVCache, LabelEmbedder, resolveGPTConfig, TransformerBlock, type GPTConfig, type PassOptions } from './gpt.js';
import { loadModelFile, saveModel, type CheckpointMeta } from '../io/checkpoint.js';

export interface ContinuousGPTConfig {
  /** the GPT's config (vocabSize V is the size of the output head) */
  gpt: GPTConfig;
  /** C: dimension of the continuous input vectors (the codebook's) */
  codeDim: number;
  /** hidden width of tok_mlp */
  inputHidden: number;
}

export interface ContinuousGPTOptions {
  /** build (and save) the output head (default true); the AR-diffusion backbone has none */
  head?: boolean;
}

/** Meta of DD2 model files: CheckpointMeta plus the role of an 'ar-diffusion' network. */
export interface DD2ModelMeta extends CheckpointMeta {
  role?: 'generator' | 'guidance' | 'ar-diffusion' | 'teacher';
}

function validate(cfg: ContinuousGPTConfig): ContinuousGPTConfig {
  for (const k of ['codeDim', 'inputHidden'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new RangeError(`dd2: ContinuousGPT: ${k} must be a positive integer, got ${cfg[k]}`);
  }
  return { gpt: resolveGPTConfig(cfg.gpt), codeDim: cfg.codeDim, inputHidden: cfg.inputHidden };
}

/** Overwrites a parameter with N(0, std²) values, or zeros for std 0. */
function reinit(p: Tensor, std: number, gen: Generator): void {
  noGrad(() => {
    const src = std > 0 ? normal(p.shape, std, 0, gen) : tensor(new Float32Array(p.size), p.shape, { device: p.device });
    if (p.size) native.storage_copy(p.storage.id, p.offset * 4, src.id, 0, p.size * 4);
    src.dispose();
  });
}

export class ContinuousGPT extends Module {
  readonly cfg: ContinuousGPTConfig;
  readonly cls_embedding: LabelEmbedder;
  readonly tok_mlp: TwoLayerMLP;
  readonly layers: ModuleList<TransformerBlock>;
  readonly norm: RMSNorm;
  readonly output: Linear | null;
  readonly rope: Rope2D;

  /** Fresh weights as LlamaGen initialises them (N(0, 0.02²) layers, zero output head); tok_mlp with
   *  PyTorch's default Linear init. */
  constructor(cfg: ContinuousGPTConfig, gen: Generator, opts: ContinuousGPTOptions = {}) {
    super();
    this.cfg = validate(cfg);
    const c = this.cfg.gpt, std = c.initializerRange;
    this.cls_embedding = this.registerModule('cls_embedding', new LabelEmbedder(c.numClasses, c.dim, c.classDropoutProb, gen, std));
    this.tok_mlp = this.registerModule('tok_mlp', new TwoLayerMLP(this.cfg.codeDim, this.cfg.inputHidden, c.dim, gen));
    this.layers = this.registerModule('layers',
      new ModuleList(Array.from({ length: c.nLayer }, () => new TransformerBlock(c, gen))));
    this.norm = this.registerModule('norm', new RMSNorm(c.dim, { eps: c.normEps }));
    this.output = opts.head === false ? null : this.registerModule('output', new Linear(c.dim, c.vocabSize, { bias: false, gen }));
    for (const [name, p] of this.namedParameters()) {
      if (name.startsWith('layers.') && p.rank === 2) reinit(p, std, gen);
    }
    if (this.output) reinit(this.output.weight, 0, gen);
    this.rope = new Rope2D(c.gridH, c.gridW, c.dim / c.nHead, { base: c.ropeBase, prefix: 1, prefixMode: c.ropePrefix });
    this.registerBuffer('rope_c', this.rope.C, false);
    this.registerBuffer('rope_s', this.rope.S, false);
    this.registerBuffer('rope_p', this.rope.P, false);
  }

  /**
   * The continuous teacher initialised from a trained GPT: every GPT weight except tok_embeddings is
   * copied; tok_mlp (C → inputHidden → E) is new (fit it to tok_mlp(c_j) ≈ tok_embeddings[j], stage 0).
   */
  static fromGPT(gpt: GPT, codeDim: number, inputHidden: number, gen: Generator): ContinuousGPT {
    const m = new ContinuousGPT({ gpt: gpt.cfg, codeDim, inputHidden }, gen);
    const sd = gpt.stateDict();
    sd.delete('tok_embeddings.weight');
    const { missing } = m.loadStateDict(sd, { strict: false });
    const fresh = missing.filter((k) => !k.startsWith('tok_mlp.'));
    if (fresh.length) {
      m.dispose();
      throw new Error(`dd2: ContinuousGPT.fromGPT: the GPT lacks ${fresh.join(', ')}`);
    }
    return m.train(gpt.training);
  }

  /** Where the weights live (inputs must be there too). */
  get device(): Device {
    return this.cls_embedding.embedding_table.weight.device;
  }

  /** Tokens per image (h·w). */
  get seqLen(): number {
    return this.cfg.gpt.gridH * this.cfg.gpt.gridW;
  }

  /** (B, n, C) → (B, n, E) through tok_mlp (with token dropout when a generator is given in training). */
  embedInputs(inputs: Tensor, gen?: Generator): Tensor {
    return this.tokenDropout(this.tokMLP(inputs), gen);
  }

  private tokMLP(inputs: Tensor): Tensor {
    const C = this.cfg.codeDim;
    if (inputs.rank !== 3 || inputs.shape[2] !== C || inputs.dtype !== 'float32') {
      throw new RangeError(`dd2: ContinuousGPT: inputs ${inputs.describe()} must be float32 (B, n, ${C})`);
    }
    return this.tok_mlp.forward(inputs);
  }

  /** [class embedding, tok_mlp(inputs)]: labels int32 (B), inputs (B, n, C) or null -> (B, 1+n, E). */
  embed(labels: Tensor, inputs: Tensor | null, gen?: Generator): Tensor {
    if (labels.dtype !== 'int32' || labels.rank !== 1 || (inputs && inputs.shape[0] !== labels.size)) {
      throw new RangeError(`dd2: ContinuousGPT: labels ${labels.describe()} must be int32 (B) matching inputs ${inputs?.describe() ?? 'null'}`);
    }
    const cls = this.cls_embedding.forward(labels, gen);                            // (B, 1, E)
    const h = inputs && inputs.shape[1] > 0 ? concat([cls, this.tokMLP(inputs)], 1) : cls;
    return this.tokenDropout(h, gen);
  }

  private tokenDropout(h: Tensor, gen?: Generator): Tensor {
    if (this.training && this.cfg.gpt.tokenDropoutP > 0 && !gen) {
      throw new Error('dd2: ContinuousGPT: token dropout in training mode needs a generator');
    }
    return gen ? dropout(h, this.cfg.gpt.tokenDropoutP, gen, this.training) : h;
  }

  /** The layers and the final norm over embedded rows h (B, T, E) at positions start.. -> (B, T, E). */
  run(h: Tensor, o: PassOptions = {}): Tensor {
    const start = o.start ?? 0;
    if (start + h.shape[1] > this.rope.T) {
      throw new RangeError(`dd2: ContinuousGPT: positions ${start}..${start + h.shape[1] - 1} exceed the ${this.rope.T} of the model`);
    }
    let x = h;
    this.layers.items.forEach((blk, i) => { x = blk.forward(x, this.rope, i, o); });
    return this.norm.forward(x);
  }

  /** (B) labels, inputs (B, n, C) continuous code vectors or null → features (B, 1+n, E) (positions 0..n) */
  features(labels: Tensor, inputs: Tensor | null, o: PassOptions = {}): Tensor {
    if ((o.start ?? 0) !== 0) throw new RangeError('dd2: ContinuousGPT.features starts at the class token; use run() for later positions');
    return this.run(this.embed(labels, inputs, o.gen), o);
  }

  /** Features -> logits (..., V). */
  logits(f: Tensor): Tensor {
    if (!this.output) throw new Error('dd2: ContinuousGPT: this model has no output head (an AR-diffusion backbone)');
    return this.output.forward(f);
  }

  /** logits (B, 1+n, V): row j predicts token j */
  forward(labels: Tensor, inputs: Tensor | null, gen?: Generator): Tensor {
    return this.logits(this.features(labels, inputs, { gen }));
  }

  /** A cache for B sequences of the full length 1 + N. */
  createCache(batch: number): KVCache {
    const c = this.cfg.gpt;
    return new KVCache(batch, c.nHead, 1 + this.seqLen, c.dim / c.nHead, c.nLayer, this.rope.C.device);
  }
}

/** Saves a ContinuousGPT (meta kind 'continuous-gpt'). */
export function saveContinuousGPT(path: string, model: ContinuousGPT, meta: Omit<DD2ModelMeta, 'kind' | 'config'>): void {
  if (!model.output) throw new Error('dd2: saveContinuousGPT: the model has no output head; save the AR-diffusion model instead');
  saveModel(path, model, { ...meta, kind: 'continuous-gpt', config: model.cfg });
}

/** Loads a model file with meta kind 'continuous-gpt': the model in eval mode and the meta. */
export function loadContinuousGPT(path: string): { model: ContinuousGPT; meta: DD2ModelMeta } {
  const { state, shapes, meta } = loadModelFile(path);
  if (meta.kind !== 'continuous-gpt') throw new Error(`dd2: loadContinuousGPT: ${path} holds a '${meta.kind}' model, not 'continuous-gpt'`);
  const model = new ContinuousGPT(meta.config as ContinuousGPTConfig, new Generator(0));
  try {
    model.loadStateDict(new Map([...state].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }])));
  } catch (e) {
    model.dispose();
    throw new Error(`dd2: loadContinuousGPT: ${path}: ${(e as Error).message}`);
  }
  return { model: model.eval(), meta: meta as DD2ModelMeta };
}

