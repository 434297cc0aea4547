// The AR teacher as an ImageSampler: token-by-token sampling with the KV cache, classifier-free guidance,
// temperature, top-k and top-p (lib/sample/ar-sample.ts sampleTokens), then VQ decoding of the indices.
// steps = N forward passes per image (one per token; guidance doubles the batch, not the passes).
// Letters: B images, N = h·w tokens per image, ch image channels, S image side.
import { existsSync } from 'node:fs';
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { reshape } from '../tensor/ops/shape.js';
import type { CheckpointMeta } from '../io/checkpoint.js';
import { loadGPTWithMeta, type GPT } from '../models/gpt.js';
import { loadVQ, type VQModel } from '../models/vq.js';
import { sampleTokens, type SampleOptions } from '../sample/ar-sample.js';
import type { ImageSampler, Latents } from './sampler.js';
import type { SamplerOptions } from './registry.js';

export class ARSampler implements ImageSampler {
  readonly steps: number;
  readonly numClasses: number;
  readonly channels: number;
  readonly size: number;

  /** Takes ownership of model and vq (dispose() frees both). */
  constructor(readonly model: GPT, readonly vq: VQModel, readonly o: SampleOptions, readonly name = 'teacher') {
    const [h, w] = vq.gridSize;
    if (h !== model.cfg.gridH || w !== model.cfg.gridW || vq.codebookSize !== model.cfg.vocabSize) {
      throw new Error(`dd2: the tokenizer (${h}x${w} tokens, ${vq.codebookSize} codes) does not match the model ` +
        `(${model.cfg.gridH}x${model.cfg.gridW} tokens, ${model.cfg.vocabSize} codes)`);
    }
    this.steps = model.seqLen;
    this.numClasses = model.cfg.numClasses;
    this.channels = vq.cfg.imageChannels;
    this.size = vq.cfg.imageSize;
  }

  /** labels (B) -> token indices int32 (B, N) on the model's device; the same seed gives the same tokens. */
  generate(labels: Int32Array, seed: number): Latents {
    const tokens = sampleTokens(this.model, labels, new Generator(seed), this.o);
    return tensor(tokens, [labels.length, this.model.seqLen], { dtype: 'int32', device: this.model.device });
  }

  /** token indices (B, N) -> images (B, ch, S, S) in [-1, 1] */
  decode(latents: Latents): Tensor {
    const [h, w] = this.vq.gridSize;
    if (latents.dtype !== 'int32' || latents.rank !== 2 || latents.shape[1] !== h * w) {
      throw new TypeError(`dd2: ${this.name}.decode: expected int32 token indices (B, ${h * w}), got ${latents.describe()}`);
    }
    return noGrad(() => tidy(() => this.vq.decodeIndices(reshape(latents, [latents.shape[0], h, w]))));
  }

  dispose(): void {
    this.vq.dispose();
    this.model.dispose();
  }
}

/** Opens a 'gpt' checkpoint with its tokenizer (o.tokenizer, else the one its meta records). */
export function openARSampler(path: string, o: SamplerOptions, meta?: CheckpointMeta): ARSampler {
  const { model, meta: m } = loadGPTWithMeta(path);
  let vq: VQModel | null = null;
  try {
    const vqPath = o.tokenizer ?? (meta ?? m).tokenizer;
    if (!vqPath) throw new Error(`dd2: --tokenizer: ${path} records no tokenizer; pass --tokenizer`);
    if (!existsSync(vqPath)) {
      throw new Error(`dd2: --tokenizer: ${vqPath} does not exist${o.tokenizer ? '' : ` (recorded in ${path}); pass --tokenizer`}`);
    }
    vq = tidy(() => loadVQ(vqPath));
    if (o.cfg !== 1 && model.cfg.classDropoutProb === 0) {
      throw new Error(`dd2: --cfg ${o.cfg}: ${path} was trained without a null class (class dropout 0); use --cfg 1`);
    }
    return new ARSampler(model, vq, { cfg: o.cfg, temperature: o.temperature, topK: o.topK, topP: o.topP });
  } catch (e) {
    vq?.dispose();
    model.dispose();
    throw e;
  }
}

/** The registry's factory for meta.kind 'gpt': one sampler, 'teacher'. */
export function arSamplerFactory(path: string, meta: CheckpointMeta, o: SamplerOptions): ImageSampler[] {
  return [openARSampler(path, o, meta)];
}
