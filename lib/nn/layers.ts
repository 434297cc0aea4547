// Standard layers over the TS ops: Linear (x Wᵀ + b, PyTorch layout W (out, in)), Embedding (V, D),
// LayerNorm / RMSNorm over the last axis D, GroupNorm over (N, C, ...) with G groups. Parameter names
// follow PyTorch ("weight", "bias") so state dicts map one to one. Initialisation is seeded.
import { Tensor } from '../tensor/tensor.js';
import { fmtShape } from '../tensor/shape.js';
import type { Generator } from '../tensor/random.js';
import { ones, zeros } from '../tensor/create.js';
import { linear } from '../tensor/ops/matmul.js';
import { embedding } from '../tensor/ops/index.js';
import { groupNorm, layerNorm, rmsNorm } from '../tensor/ops/norm.js';
import { Module } from './module.js';
import { defaultGenerator, fanInUniform, normal } from './init.js';

function lastDim(layer: string, x: Tensor, want: number): void {
  if (x.rank < 1 || x.shape[x.rank - 1] !== want) {
    throw new RangeError(`dd2: ${layer}: input ${fmtShape(x.shape)} must end in ${want}`);
  }
}

export interface LinearOptions { bias?: boolean; gen?: Generator }

/** y = x Wᵀ + b; W (out, in) and b (out) ~ U(±1/sqrt(in)) as in PyTorch. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const gen = opts.gen ?? defaultGenerator();
    this.weight = this.registerParameter('weight', fanInUniform([outFeatures, inFeatures], inFeatures, gen));
    this.bias = opts.bias === false ? null : this.registerParameter('bias', fanInUniform([outFeatures], inFeatures, gen));
  }

  /** x (..., in) -> (..., out) */
  forward(x: Tensor): Tensor {
    lastDim(`Linear(${this.inFeatures}, ${this.outFeatures})`, x, this.inFeatures);
    return linear(x, this.weight, this.bias);
  }
}

export interface EmbeddingOptions { std?: number; gen?: Generator }

/** Lookup table weight (V, D) ~ N(0, std²), std 0.02 by default (GPT/LlamaGen convention). */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(readonly numEmbeddings: number, readonly dim: number, opts: EmbeddingOptions = {}) {
    super();
    this.weight = this.registerParameter('weight',
      normal([numEmbeddings, dim], opts.std ?? 0.02, 0, opts.gen ?? defaultGenerator()));
  }

  /** int32 indices (...) -> (..., D) */
  forward(idx: Tensor): Tensor {
    return embedding(this.weight, idx);
  }
}

export interface NormOptions { eps?: number; affine?: boolean }

/** LayerNorm over the last axis D: weight 1, bias 0 (eps 1e-5). */
export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(readonly dim: number, opts: NormOptions & { bias?: boolean } = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones([dim])) : null;
    this.bias = affine && opts.bias !== false ? this.registerParameter('bias', zeros([dim])) : null;
  }

  /** x (..., D) -> (..., D) */
  forward(x: Tensor): Tensor {
    lastDim(`LayerNorm(${this.dim})`, x, this.dim);
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMSNorm over the last axis D (LlamaGen): x / rms(x) * weight, weight 1 (eps 1e-5). */
export class RMSNorm extends Module {
  readonly weight: Tensor | null;
  readonly eps: number;

  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.weight = opts.affine ?? true ? this.registerParameter('weight', ones([dim])) : null;
  }

  forward(x: Tensor): Tensor {
    lastDim(`RMSNorm(${this.dim})`, x, this.dim);
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** GroupNorm(G, C) over x (N, C, ...spatial): per-channel weight 1 and bias 0 (eps 1e-5). */
export class GroupNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(readonly groups: number, readonly channels: number, opts: NormOptions = {}) {
    super();
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      throw new RangeError(`dd2: GroupNorm: ${channels} channels do not split into ${groups} groups`);
    }
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones([channels])) : null;
    this.bias = affine ? this.registerParameter('bias', zeros([channels])) : null;
  }

  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape[1] !== this.channels) {
      throw new RangeError(`dd2: GroupNorm(${this.groups}, ${this.channels}): input ${fmtShape(x.shape)} must be (N, ${this.channels}, ...)`);
    }
    return groupNorm(x, this.groups, this.weight, this.bias, this.eps);
  }
}
