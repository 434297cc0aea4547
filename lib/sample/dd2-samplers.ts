// ImageSampler factories (lib/eval/sampler.ts) for the DD2 modes of lib/sample/dd2-sample.ts: the one-step
// generator ('dd2-1step', noise-driven, so it also offers generateFromNoise for PPL), Algorithm 4 few-step
// sampling ('dd2-fewstep-k'), the AR teacher ('teacher' / 'teacher-continuous'), the teacher with fewer
// steps ('teacher-parallel-k') and independent per-position marginals ('marginals'). Continuous latents
// (B, N, C) are decoded directly by the VQ decoder (reshaped to (B, C, h, w)); index latents (B, N) through
// the codebook. A sampler owns the models it is given: dispose() frees them (Module.dispose is idempotent,
// so samplers may share models).
// Letters: B images, N = h·w tokens, C code dim, V codebook size.
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import { clamp } from '../tensor/ops/elementwise.js';
import { contiguous, permute, reshape } from '../tensor/ops/shape.js';
import type { ImageSampler, Latents } from '../eval/sampler.js';
import { loadVQ, type VQModel } from '../models/vq.js';
import { GPT, loadGPTWithMeta } from '../models/gpt.js';
import { ContinuousGPT, loadContinuousGPT } from '../models/continuous-gpt.js';
import { loadARDiffusion, type ARDiffusion } from '../models/ar-diffusion.js';
import { readSafetensors } from '../io/safetensors.js';
import { fewStep, loadMarginals, oneStep, sampleMarginals, snapToCodes, teacherAdapter, teacherParallel, teacherSample,
  type TeacherAdapter, type TeacherSampleOptions } from './dd2-sample.js';

/** Continuous tokens (B, N, C) → images (B, ch, S, S) clamped to [-1, 1] (METHOD §3.2: no snapping). */
export function decodeContinuous(vq: VQModel, x: Tensor): Tensor {
  const [h, w] = vq.gridSize, C = vq.cfg.codeDim;
  if (x.rank !== 3 || x.shape[1] !== h * w || x.shape[2] !== C || x.dtype !== 'float32') {
    throw new RangeError(`dd2: decodeContinuous: latents ${x.describe()} must be float32 (B, ${h * w}, ${C})`);
  }
  const B = x.shape[0];
  return clamp(vq.decode(contiguous(permute(reshape(x, [B, h, w, C]), [0, 3, 1, 2]))), -1, 1);
}

/** Either kind of latents → images: int32 (B, N) code indices or float32 (B, N, C) vectors. */
export function decodeLatents(vq: VQModel, z: Latents): Tensor {
  return noGrad(() => tidy(() => {
    if (z.dtype === 'int32') {
      const [h, w] = vq.gridSize;
      return vq.decodeIndices(reshape(z, [z.shape[0], h, w]));
    }
    return decodeContinuous(vq, z);
  }));
}

/** The VQ codebook the continuous teacher reads (V, C): the L2-normalised codes, kept. */
export function codebookOf(vq: VQModel): Tensor {
  return keep(noGrad(() => tidy(() => contiguous(vq.codes()))));
}

function checkMatch(vq: VQModel, N: number, C: number | null, V: number | null, what: string): void {
  const [h, w] = vq.gridSize;
  if (h * w !== N || (C !== null && vq.cfg.codeDim !== C) || (V !== null && vq.codebookSize !== V)) {
    throw new Error(`dd2: ${what} (${N} tokens${C !== null ? `, code dim ${C}` : ''}${V !== null ? `, ${V} codes` : ''}) does not match ` +
      `the tokenizer (${h}x${w} tokens, code dim ${vq.cfg.codeDim}, ${vq.codebookSize} codes)`);
  }
}

interface Base { vq: VQModel; numClasses: number }

function base(b: Base, name: string, steps: number, dispose: () => void): Omit<ImageSampler, 'generate'> {
  return {
    name, steps, numClasses: b.numClasses, channels: b.vq.cfg.imageChannels, size: b.vq.cfg.imageSize,
    decode: (z) => decodeLatents(b.vq, z),
    dispose: () => { dispose(); b.vq.dispose(); },
  };
}

export interface OneStepSamplerOptions { snap?: boolean; name?: string }

/** The one-step generator (1 pass); snap: replace every output vector by its nearest code before decoding. */
export function oneStepSampler(generator: ARDiffusion, vq: VQModel, o: OneStepSamplerOptions = {}): ImageSampler {
  const N = generator.seqLen, C = generator.tokenDim;
  checkMatch(vq, N, C, null, 'the generator');
  const codebook = o.snap ? codebookOf(vq) : null;
  const fromNoise = (labels: Int32Array, noise: Tensor): Latents => {
    const x = oneStep(generator, labels, noise);
    if (!codebook) return x;
    const s = snapToCodes(x, codebook);
    x.dispose();
    return s;
  };
  return {
    ...base({ vq, numClasses: generator.backbone.cfg.gpt.numClasses }, o.name ?? (o.snap ? 'dd2-1step-snap' : 'dd2-1step'), 1,
      () => { codebook?.dispose(); generator.dispose(); }),
    noiseShape: [N, C],
    generate: (labels, seed) => tidy(() => fromNoise(labels, new Generator(seed).normal([labels.length, N, C], generator.device))),
    generateFromNoise: fromNoise,
  };
}

export interface FewStepSamplerOptions extends TeacherSampleOptions { snap?: boolean }

/** Algorithm 4 with k passes (1 generator + k−1 continuous-teacher passes). */
export function fewStepSampler(generator: ARDiffusion, teacher: ContinuousGPT, vq: VQModel, k: number,
  o: FewStepSamplerOptions = {}): ImageSampler {
  checkMatch(vq, generator.seqLen, generator.tokenDim, teacher.cfg.gpt.vocabSize, 'the generator / teacher');
  const codebook = codebookOf(vq);
  const t = teacherAdapter(teacher, codebook);
  return {
    ...base({ vq, numClasses: generator.backbone.cfg.gpt.numClasses }, `dd2-fewstep-${k}`, k,
      () => { codebook.dispose(); generator.dispose(); teacher.dispose(); }),
    generate: (labels, seed) => fewStep(generator, t, labels, k, new Generator(seed), o),
  };
}

function adapterFor(teacher: GPT | ContinuousGPT, vq: VQModel): { t: TeacherAdapter; codebook: Tensor | null } {
  const isGPT = teacher instanceof GPT;
  const c = isGPT ? teacher.cfg : teacher.cfg.gpt;
  checkMatch(vq, c.gridH * c.gridW, isGPT ? null : teacher.cfg.codeDim, c.vocabSize, 'the teacher');
  const codebook = isGPT ? null : codebookOf(vq);
  return { t: teacherAdapter(teacher, codebook ?? undefined), codebook };
}

function indices(tokens: Int32Array, B: number, N: number, device: Tensor['device']): Tensor {
  return tensor(tokens, [B, N], { device });
}

/** The AR teacher, N passes (a discrete GPT, or the continuous teacher fed code vectors). */
export function teacherSampler(teacher: GPT | ContinuousGPT, vq: VQModel, o: TeacherSampleOptions = {}): ImageSampler {
  const { t, codebook } = adapterFor(teacher, vq);
  const N = t.seqLen;
  return {
    ...base({ vq, numClasses: t.numClasses }, teacher instanceof GPT ? 'teacher' : 'teacher-continuous', N,
      () => { codebook?.dispose(); teacher.dispose(); }),
    generate: (labels, seed) => indices(teacherSample(t, labels, new Generator(seed), o), labels.length, N, t.device),
  };
}

/** 'Teacher with fewer steps': N−k sequential passes, then the last k tokens in one pass (N−k+1 passes). */
export function teacherParallelSampler(teacher: GPT | ContinuousGPT, vq: VQModel, k: number, marginals: Float32Array,
  o: TeacherSampleOptions = {}): ImageSampler {
  const { t, codebook } = adapterFor(teacher, vq);
  const N = t.seqLen;
  if (!(Number.isInteger(k) && k >= 1 && k <= N)) throw new RangeError(`dd2: teacher-parallel: k must be an integer in [1, ${N}], got ${k}`);
  return {
    ...base({ vq, numClasses: t.numClasses }, `teacher-parallel-${k}`, N - k + 1, () => { codebook?.dispose(); teacher.dispose(); }),
    generate: (labels, seed) => indices(teacherParallel(t, labels, k, marginals, new Generator(seed), o), labels.length, N, t.device),
  };
}

/** Independent per-position marginals (no model pass; labels are ignored). */
export function marginalsSampler(marginals: Float32Array, vq: VQModel, numClasses: number): ImageSampler {
  const [h, w] = vq.gridSize, N = h * w, V = vq.codebookSize;
  if (marginals.length !== N * V) throw new RangeError(`dd2: marginals: the table has ${marginals.length} values, not ${N} x ${V} for this tokenizer`);
  const device = vq.codebook.weight.device;
  return {
    ...base({ vq, numClasses }, 'marginals', 0, () => undefined),
    generate: (labels, seed) => indices(sampleMarginals(marginals, N, V, labels.length, new Generator(seed), device), labels.length, N, device),
  };
}

// ---------------------------------------------------------------------------------------------------------
// From files

/** A teacher checkpoint: 'gpt' or 'continuous-gpt', with the tokenizer path its meta records. */
export function loadTeacher(path: string): { model: GPT | ContinuousGPT; tokenizer?: string } {
  const kind = readKind(path);
  if (kind === 'gpt') { const { model, meta } = loadGPTWithMeta(path); return { model, tokenizer: meta.tokenizer }; }
  if (kind === 'continuous-gpt') { const { model, meta } = loadContinuousGPT(path); return { model, tokenizer: meta.tokenizer }; }
  throw new Error(`dd2: ${path} holds a '${kind}' model; a teacher is a 'gpt' or 'continuous-gpt' checkpoint`);
}

/** meta.kind of a dd2 model file (reads the header only as far as the file reader does). */
export function readKind(path: string): string {
  const text = readSafetensors(path).metadata.__dd2__;
  if (!text) throw new Error(`dd2: ${path} is not a dd2 checkpoint`);
  return String((JSON.parse(text) as { kind?: unknown }).kind);
}

export interface GeneratorFiles {
  /** ar-diffusion checkpoint of the generator (role 'generator', EMA weights) */
  generator: string;
  /** VQ tokenizer (default: the one the generator's meta records) */
  tokenizer?: string;
  /** continuous teacher for few-step sampling (default: teacher-continuous.safetensors next to the generator) */
  teacher?: string;
  /** few-step k values (each >= 2) */
  fewStep?: number[];
  snap?: boolean;
  sampling?: TeacherSampleOptions;
}

/** Resolves a sibling file of the generator (the distillation run folder's layout) when `given` is absent. */
export function siblingOr(given: string | undefined, of: string, name: string): string | undefined {
  if (given) return given;
  const p = join(dirname(of), name);
  return existsSync(p) ? p : undefined;
}

/** Samplers sharing models: each one's dispose() is deferred until all of them have been disposed. */
function shareModels(samplers: ImageSampler[]): ImageSampler[] {
  let live = samplers.length;
  const all = samplers.map((s) => s.dispose);
  return samplers.map((s) => {
    let done = false;
    return { ...s, dispose: () => { if (!done) { done = true; if (--live === 0) for (const d of all) d(); } } };
  });
}

/** The samplers of a distillation run from files: one-step, then one few-step sampler per k (models loaded
 *  once and shared; they are freed when every returned sampler has been disposed). */
export function samplersFromFiles(f: GeneratorFiles): ImageSampler[] {
  const out: ImageSampler[] = [];
  const { model: g, meta } = loadARDiffusion(f.generator);
  let vq: VQModel | null = null, teacher: ContinuousGPT | null = null;
  try {
    const vqPath = f.tokenizer ?? meta.tokenizer;
    if (!vqPath) throw new Error(`dd2: ${f.generator} records no tokenizer; pass one`);
    if (!existsSync(vqPath)) throw new Error(`dd2: the tokenizer ${vqPath} does not exist`);
    vq = loadVQ(vqPath);
    out.push(oneStepSampler(g, vq, { snap: f.snap }));
    const ks = f.fewStep ?? [];
    if (ks.length) {
      const tPath = siblingOr(f.teacher, f.generator, 'teacher-continuous.safetensors');
      if (!tPath) throw new Error(`dd2: few-step sampling needs the continuous teacher (none given, none next to ${f.generator})`);
      teacher = loadContinuousGPT(tPath).model;
      for (const k of ks) out.push(fewStepSampler(g, teacher, vq, k, { ...f.sampling, snap: f.snap }));
    }
    return shareModels(out);
  } catch (e) {
    for (const s of out) s.dispose();
    g.dispose(); vq?.dispose(); teacher?.dispose();
    throw e;
  }
}

export { loadMarginals };
