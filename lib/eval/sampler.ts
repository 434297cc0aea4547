// What `dd2 eval` and `dd2 sample` need from anything that makes images: the AR teacher (token by
// token), the DD2 one-step generator, few-step teacher-involved sampling and the baselines. Token
// generation and VQ decoding are separate calls so that speed can be reported for each.
// Letters: B images, N tokens per image (h·w), C code dimension, ch image channels, S image side.
import type { Tensor } from '../tensor/tensor.js';

/** Token latents: code indices (int32 (B, N)) or continuous code-space vectors (float32 (B, N, C)). */
export type Latents = Tensor;

export interface ImageSampler {
  /** short name for tables, e.g. 'teacher', 'dd2-1step', 'dd2-fewstep-4', 'marginals', 'teacher-parallel-16' */
  readonly name: string;
  /** model inferences (forward passes) per image: 256-ish for an AR teacher, 1 for a one-step generator */
  readonly steps: number;
  readonly numClasses: number;
  /** images are (B, channels, size, size) in [-1, 1] */
  readonly channels: number;
  readonly size: number;
  /** token generation for the given class labels; deterministic in `seed` */
  generate(labels: Int32Array, seed: number): Latents;
  /** VQ decoding of what generate() returned: images (B, ch, S, S) in [-1, 1] */
  decode(latents: Latents): Tensor;
  /** noise-driven samplers (one-step generator): the noise of one image is (N, C) */
  readonly noiseShape?: readonly [number, number];
  /** generation from a given noise batch (B, N, C), for PPL interpolation */
  generateFromNoise?(labels: Int32Array, noise: Tensor): Latents;
  /** frees the models' tensors */
  dispose(): void;
}
