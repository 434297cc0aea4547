// The AR-diffusion model of DD2 (METHOD §3.1, §4.1, §5.2): a causal transformer backbone (the continuous
// teacher without its output head) and a MAR-style MLP head that maps (noisy token, time, feature) to a
// velocity. The same architecture serves as the stage-1 AR-diffusion model ψ0, the guidance network ψ and
// the one-step generator θ (all initialised from ψ0, §5.5).
//   features:  backbone input [class, z_0 .. z_{N-2}] -> f (B, N, E), row i sees z_<i and conditions token i
//   velocity:  v = head(x_t, t, f) per token row (t = 0 data, t = 1 noise; v ≈ ε − x_0)
//   generate:  x = ε − v(ε, t = 1, features(labels, ε)), one pass over a noise sequence ε (B, N, C): token i
//              depends on ε_i and, through the shifted backbone input, on ε_<i (the AR-flow dependency).
// The DD2 networks use no dropout and no class dropout: fromTeacher zeroes the backbone's dropout rates (a
// stochastic generator map or unconditional features would corrupt the regression targets), and the class
// embedder stays in eval mode (the null-class row is kept so the backbone's weights match the teacher's).
// Letters: B batch, N tokens per image, C code dim, E backbone width, M = B·N head rows.
import { Tensor } from '../tensor/tensor.js';
import { full } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import type { Device } from '../tensor/dtype.js';
import { sub } from '../tensor/ops/elementwise.js';
import { reshape, slice } from '../tensor/ops/shape.js';
import { Module } from '../nn/module.js';
import { loadModelFile, saveModel } from '../io/checkpoint.js';
import { MLPHead, type MLPHeadConfig } from './mlp-head.js';
import { ContinuousGPT, type ContinuousGPTConfig, type DD2ModelMeta } from './continuous-gpt.js';

export interface ARDiffusionConfig {
  /** the backbone's config (its vocabSize only sizes the unused null-class/teacher bookkeeping) */
  backbone: ContinuousGPTConfig;
  /** the head's config: tokenDim = backbone codeDim, condDim = backbone width */
  head: MLPHeadConfig;
}

function validate(cfg: ARDiffusionConfig): void {
  const { codeDim, gpt } = cfg.backbone;
  if (cfg.head.tokenDim !== codeDim || cfg.head.condDim !== gpt.dim) {
    throw new RangeError(`dd2: ARDiffusion: head tokenDim ${cfg.head.tokenDim} / condDim ${cfg.head.condDim} must equal ` +
      `the backbone's code dim ${codeDim} / width ${gpt.dim}`);
  }
}

export class ARDiffusion extends Module {
  readonly cfg: ARDiffusionConfig;
  readonly backbone: ContinuousGPT;
  readonly head: MLPHead;

  constructor(cfg: ARDiffusionConfig, gen: Generator) {
    super();
    validate(cfg);
    this.backbone = this.registerModule('backbone', new ContinuousGPT(cfg.backbone, gen, { head: false }));
    this.head = this.registerModule('head', new MLPHead(cfg.head, gen));
    this.cfg = { backbone: this.backbone.cfg, head: { ...this.head.cfg } };
    this.train(true);
  }

  /**
   * ψ0 of stage 1: the teacher's backbone (every weight but the output head copied; dropout rates set to 0)
   * and a fresh MLP head (zero-initialised modulations and output, so v = 0 at first).
   */
  static fromTeacher(teacher: ContinuousGPT, head: Omit<MLPHeadConfig, 'tokenDim' | 'condDim'>, gen: Generator): ARDiffusion {
    const bc = teacher.cfg;
    const cfg: ARDiffusionConfig = {
      backbone: { ...bc, gpt: { ...bc.gpt, tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0 } },
      head: { ...head, tokenDim: bc.codeDim, condDim: bc.gpt.dim },
    };
    const m = new ARDiffusion(cfg, gen);
    const sd = teacher.stateDict();
    sd.delete('output.weight');
    try {
      m.backbone.loadStateDict(sd);
    } catch (e) {
      m.dispose();
      throw new Error(`dd2: ARDiffusion.fromTeacher: ${(e as Error).message}`);
    }
    return m;
  }

  /** Training mode everywhere except the class embedder (no class dropout in the DD2 networks). */
  override train(mode = true): this {
    super.train(mode);
    this.backbone.cls_embedding.training = false;
    return this;
  }

  get device(): Device {
    return this.backbone.device;
  }

  /** N, tokens per image. */
  get seqLen(): number {
    return this.backbone.seqLen;
  }

  /** C, the token dimension. */
  get tokenDim(): number {
    return this.cfg.head.tokenDim;
  }

  /** causal features: labels (B), z (B, n, C) with 1 <= n <= N → f (B, n, E); input [cls, z_0 .. z_{n-2}], row i conditions token i */
  features(labels: Tensor, z: Tensor): Tensor {
    const C = this.tokenDim, N = this.seqLen;
    if (z.rank !== 3 || z.shape[2] !== C || z.shape[1] < 1 || z.shape[1] > N || z.shape[0] !== labels.size) {
      throw new RangeError(`dd2: ARDiffusion.features: z ${z.describe()} must be (B, n, ${C}) with 1 <= n <= ${N}, ` +
        `B = ${labels.size} labels`);
    }
    const n = z.shape[1];
    return this.backbone.features(labels, n > 1 ? slice(z, 1, 0, n - 1) : null);
  }

  /** head on all positions: xt (B, N, C), t (B, N), f (B, N, E) → v (B, N, C) (flattens to B·N rows) */
  velocity(xt: Tensor, t: Tensor, f: Tensor): Tensor {
    const C = this.tokenDim, E = this.cfg.head.condDim;
    if (xt.rank !== 3 || xt.shape[2] !== C) throw new RangeError(`dd2: ARDiffusion.velocity: xt ${xt.describe()} must be (B, N, ${C})`);
    const [B, N] = xt.shape;
    if (t.size !== B * N || f.rank !== 3 || f.shape[0] !== B || f.shape[1] !== N || f.shape[2] !== E) {
      throw new RangeError(`dd2: ARDiffusion.velocity: t ${t.describe()} and f ${f.describe()} must be (${B}, ${N}) and (${B}, ${N}, ${E})`);
    }
    const v = this.head.forward(reshape(xt, [B * N, C]), reshape(t, [B * N]), reshape(f, [B * N, E]));
    return reshape(v, [B, N, C]);
  }

  /** one-step generation (METHOD §3.1): x = eps − v(eps, t = 1, features(labels, eps)), eps (B, N, C) → (B, N, C) */
  generate(labels: Tensor, eps: Tensor): Tensor {
    const f = this.features(labels, eps);
    const [B, N] = eps.shape;
    return sub(eps, this.velocity(eps, full([B, N], 1, { device: eps.device }), f));
  }

  /** A deep copy of the weights (same config, same training mode). */
  clone(): ARDiffusion {
    const m = new ARDiffusion(this.cfg, new Generator(0));
    m.loadStateDict(this.stateDict());
    return m.train(this.training);
  }
}

/** Saves an ARDiffusion (meta kind 'ar-diffusion', config = model.cfg). */
export function saveARDiffusion(path: string, model: ARDiffusion, meta: Omit<DD2ModelMeta, 'kind' | 'config'>): void {
  saveModel(path, model, { ...meta, kind: 'ar-diffusion', config: model.cfg });
}

/** The meta that loadARDiffusion accepts, for writers that use saveModel / RunDir directly. */
export function arDiffusionMeta(model: ARDiffusion, meta: Omit<DD2ModelMeta, 'kind' | 'config'>): DD2ModelMeta {
  return { ...meta, kind: 'ar-diffusion', config: model.cfg };
}

/** Loads a model file with meta kind 'ar-diffusion': the model in eval mode and the meta (role, tokenizer). */
export function loadARDiffusion(path: string): { model: ARDiffusion; meta: DD2ModelMeta } {
  const { state, shapes, meta } = loadModelFile(path);
  if (meta.kind !== 'ar-diffusion') throw new Error(`dd2: loadARDiffusion: ${path} holds a '${meta.kind}' model, not 'ar-diffusion'`);
  const model = new ARDiffusion(meta.config as ARDiffusionConfig, new Generator(0));
  try {
    model.loadStateDict(new Map([...state].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }])));
  } catch (e) {
    model.dispose();
    throw new Error(`dd2: loadARDiffusion: ${path}: ${(e as Error).message}`);
  }
  return { model: model.eval(), meta: meta as DD2ModelMeta };
}
