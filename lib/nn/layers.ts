// Standard layers over the TS ops: Linear (x Wᵀ + b, PyTorch layout W (out, in)), Embedding (V, D),
// LayerNorm / RMSNorm over the last axis D, GroupNorm over (N, C, ...) with G groups. Parameter names
// follow PyTorch ("weight", "bias") so state dicts map one to one. Initialisation is seeded.
import { Tensor } from '../tensor/tensor.js';
import { fmtShape } from '../tensor/shape.js';
import type { Generator } from '../tensor/random.js';
import { linear } from '../tensor/ops/matmul.js';
import { Module } from './module.js';
import { defaultGenerator, fanInUniform } from './init.js';

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
