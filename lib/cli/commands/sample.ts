// `dd2 sample`: draws images from a trained AR teacher (a 'gpt' checkpoint) with classifier-free guidance,
// temperature, top-k and top-p, decodes the tokens with the VQ tokenizer the model was trained on, and
// writes grid.png, optionally one PNG per image, samples.npz (tokens int32 (n, h·w), labels int32 (n),
// images uint8 (n, H, W, C)) and samples.json (what was run). The same seed gives the same bytes.
// DD2 modes (runDD2Sample below): --generator <ar-diffusion ckpt> one-step, with --few-step k Algorithm 4 with
// the continuous teacher; --baseline marginals | teacher-parallel:k. They write the same files; samples.npz
// holds tokens (index modes) or latents float32 (n, h·w, C) (continuous modes) instead.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { tensor } from '../../tensor/create.js';
import { noGrad, tidy } from '../../tensor/engine.js';
import { Generator } from '../../tensor/random.js';
import type { Device } from '../../tensor/dtype.js';
import { GPT, loadGPTWithMeta } from '../../models/gpt.js';
import { loadContinuousGPT } from '../../models/continuous-gpt.js';
import { loadARDiffusion } from '../../models/ar-diffusion.js';
import { fewStepSampler, loadMarginals, loadTeacher, marginalsSampler, oneStepSampler, readKind, siblingOr, teacherParallelSampler }
  from '../../sample/dd2-samplers.js';
import type { ImageSampler } from '../../eval/sampler.js';
import { loadVQ, type VQModel } from '../../models/vq.js';
import { sampleTokens, type SampleOptions } from '../../sample/ar-sample.js';
import { toUint8Images } from '../../data/dataset.js';
import { writeGrid, writePng } from '../../io/png.js';
import { writeNpz } from '../../io/npz.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { Progress } from '../../io/progress.js';
import { emitSummary, info, parseChoiceArg, parseFloatArg, parseIntArg, parseIntListArg, UsageError, useDevice } from '../options.js';

interface RawOptions {
  model?: string; tokenizer?: string; generator?: string; fewStep?: number; baseline?: Baseline; marginals?: string; snap: boolean; class?: number[]; cfg: number; n: number; batchSize: number; temperature: number;
  topK: number; topP: number; perImage: boolean; nrow?: number; device: Device; seed: number; out: string; json: boolean;
}

/** Images decoded from tokens (B·N) -> uint8 NHWC. */
export function decodeTokens(vq: VQModel, tokens: Int32Array, B: number): Uint8Array {
  const [h, w] = vq.gridSize;
  return noGrad(() => tidy(() => toUint8Images(vq.decodeIndices(tensor(tokens, [B, h, w])))));
}

export interface SampleRunResult {
  tokens: Int32Array; labels: Int32Array; images: Uint8Array; height: number; width: number; channels: 1 | 3;
}

/** Samples n images (labels cycling through `classes`) in batches of batchSize from one seeded generator. */
export function sampleImages(model: GPT, vq: VQModel, classes: number[], n: number, batchSize: number, seed: number,
  o: SampleOptions, progress?: Progress): SampleRunResult {
  const N = model.seqLen, { imageSize: S, imageChannels: C } = vq.cfg;
  const [h, w] = vq.gridSize;
  if (h !== model.cfg.gridH || w !== model.cfg.gridW || vq.codebookSize !== model.cfg.vocabSize) {
    throw new Error(`dd2: sample: the tokenizer (${h}x${w} tokens, ${vq.codebookSize} codes) does not match the model ` +
      `(${model.cfg.gridH}x${model.cfg.gridW}, ${model.cfg.vocabSize})`);
  }
  if (C !== 1 && C !== 3) throw new Error(`dd2: sample: images with ${C} channels cannot be written as PNG`);
  const gen = new Generator(seed);
  const labels = Int32Array.from({ length: n }, (_, i) => classes[i % classes.length]);
  const tokens = new Int32Array(n * N), images = new Uint8Array(n * S * S * C);
  for (let s = 0; s < n; s += batchSize) {
    const lab = labels.subarray(s, Math.min(n, s + batchSize));
    const t = sampleTokens(model, lab, gen, { ...o, onStep: () => progress?.tick(lab.length) });
    tokens.set(t, s * N);
    images.set(decodeTokens(vq, t, lab.length), s * S * S * C);
  }
  return { tokens, labels, images, height: S, width: S, channels: C as 1 | 3 };
}

export function makeSampleCommand(): Command {
  const cmd = new Command('sample')
    .description('sample images from a trained AR teacher to a PNG grid, per-image PNGs and an .npz')
    .option('--model <file>', 'AR teacher checkpoint (gpt.safetensors from dd2 train ar; a continuous-gpt teacher for --few-step)')
    .option('--tokenizer <file>', 'VQ tokenizer checkpoint (default: the one recorded in the model checkpoint)')
    .option('--generator <file>', 'DD2 one-step generator (generator.safetensors from dd2 distill): one-step sampling')
    .addOption(new Option('--few-step <k>', 'with --generator: Algorithm 4, the continuous teacher (--model, default teacher-continuous.safetensors ' +
      'next to the generator) regenerates the last k-1 tokens').argParser(parseIntArg('--few-step', { min: 1 })))
    .addOption(new Option('--baseline <mode>', "baseline sampler: 'marginals' (independent per-position token marginals) or " +
      "'teacher-parallel:k' (the teacher --model with its last k tokens sampled in one parallel step)").argParser(parseBaseline))
    .option('--marginals <file>', 'per-position token marginals for --baseline (default: marginals.safetensors next to --model / --generator)')
    .option('--snap', 'with --generator: replace each generated vector by its nearest code before decoding', false)
    .addOption(new Option('--class <list>', 'class label(s), comma-separated, cycled over the images (default: all classes)')
      .argParser(parseIntListArg('--class', { min: 0 })))
    .addOption(new Option('--cfg <scale>', 'classifier-free guidance scale (1 = none)').default(2.0).argParser(parseFloatArg('--cfg')))
    .addOption(new Option('--n <count>', 'number of images').default(16).argParser(parseIntArg('--n', { min: 1 })))
    .addOption(new Option('--batch-size <n>', 'images sampled at once').default(64).argParser(parseIntArg('--batch-size', { min: 1 })))
    .addOption(new Option('--temperature <t>', 'softmax temperature').default(1.0)
      .argParser(parseFloatArg('--temperature', { above: 0 })))
    .addOption(new Option('--top-k <k>', 'keep the k most likely tokens (0 = all)').default(0)
      .argParser(parseIntArg('--top-k', { min: 0 })))
    .addOption(new Option('--top-p <p>', 'nucleus sampling mass (1 = off)').default(1.0)
      .argParser(parseFloatArg('--top-p', { above: 0, max: 1 })))
    .option('--per-image', 'also write one PNG per image', false)
    .addOption(new Option('--nrow <n>', 'images per row of the grid (default: about sqrt(n))')
      .argParser(parseIntArg('--nrow', { min: 1 })))
    .addOption(new Option('--device <cpu|cuda>', 'where to compute').default('cpu')
      .argParser(parseChoiceArg('--device', ['cpu', 'cuda'] as const)))
    .addOption(new Option('--seed <n>', 'random seed (integer >= 0)').default(0).argParser(parseIntArg('--seed', { min: 0 })))
    .addOption(new Option('--out <dir>', 'output folder').default('samples'))
    .option('--json', 'print a machine-readable JSON summary on stdout (messages go to stderr)', false);
  cmd.action((raw: RawOptions) => {
    useDevice(raw.device);
    if (raw.generator || raw.baseline || raw.fewStep !== undefined) { runDD2Sample(raw); return; }
    if (!raw.model) throw new UsageError('--model: a model checkpoint is required (or --generator / --baseline)');
    if (!existsSync(raw.model)) throw new UsageError(`--model: ${raw.model} does not exist`);
    const { model, meta } = loadGPTWithMeta(raw.model);
    const vqPath = raw.tokenizer ?? meta.tokenizer;
    let vq: VQModel | null = null;
    try {
      if (!vqPath) throw new UsageError(`--tokenizer: ${raw.model} records no tokenizer; pass --tokenizer`);
      if (!existsSync(vqPath)) {
        const where = raw.tokenizer ? '' : ' (recorded in the model checkpoint); pass --tokenizer';
        throw new UsageError(`--tokenizer: ${vqPath} does not exist${where}`);
      }
      vq = tidy(() => loadVQ(vqPath));     // the scope frees any temporaries of the constructor
      const K = model.cfg.numClasses;
      const classes = raw.class ?? Array.from({ length: K }, (_, i) => i);
      const bad = classes.find((c) => c >= K);
      if (bad !== undefined) throw new UsageError(`--class: ${bad} is not a class of this model (0..${K - 1})`);
      const o: SampleOptions = { cfg: raw.cfg, temperature: raw.temperature, topK: raw.topK, topP: raw.topP };
      const t0 = performance.now();
      const progress = new Progress(raw.n * model.seqLen, 'sample', { json: raw.json });
      const r = sampleImages(model, vq, classes, raw.n, raw.batchSize, raw.seed, o, progress);
      progress.done();
      mkdirSync(raw.out, { recursive: true });
      const { height: H, width: W, channels: C } = r;
      writeGrid(join(raw.out, 'grid.png'), r.images, raw.n, H, W, C, raw.nrow);
      if (raw.perImage) {
        for (let i = 0; i < raw.n; i++) {
          const img = r.images.subarray(i * H * W * C, (i + 1) * H * W * C);
          writePng(join(raw.out, `${String(i).padStart(5, '0')}-class${r.labels[i]}.png`), img, H, W, C);
        }
      }
      writeNpz(join(raw.out, 'samples.npz'), {
        tokens: { dtype: 'int32', shape: [raw.n, model.seqLen], data: r.tokens },
        labels: { dtype: 'int32', shape: [raw.n], data: r.labels },
        images: { dtype: 'uint8', shape: [raw.n, H, W, C], data: r.images },
      });
      const manifest = { kind: 'gpt-samples', model: resolve(raw.model!), tokenizer: resolve(vqPath), n: raw.n, classes,
        seed: raw.seed, batchSize: raw.batchSize, ...o, grid: [model.cfg.gridH, model.cfg.gridW], image: [H, W, C] };
      writeFileAtomic(join(raw.out, 'samples.json'), JSON.stringify(manifest, null, 2) + '\n');
      info(`sample: ${raw.n} images in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${raw.out}`);
      emitSummary(raw.json, { out: raw.out, grid: join(raw.out, 'grid.png'), npz: join(raw.out, 'samples.npz'), n: raw.n,
        classes: classes.join(','), cfg: raw.cfg, seed: raw.seed, seconds: Number(((performance.now() - t0) / 1000).toFixed(2)) });
    } finally {
      vq?.dispose();
      model.dispose();
    }
  });
  return cmd;
}

// ---------------------------------------------------------------------------------------------------------
// DD2 modes: the one-step generator, Algorithm 4 few-step sampling and the baselines, through the ImageSampler
// factories of lib/sample/dd2-samplers.ts. Batch b is generated with seed = seed·65536 + b.

type Baseline = { kind: 'marginals' } | { kind: 'teacher-parallel'; k: number };

function parseBaseline(v: string): Baseline {
  if (v === 'marginals') return { kind: 'marginals' };
  const m = /^teacher-parallel:(\d+)$/.exec(v);
  if (m && Number(m[1]) >= 1) return { kind: 'teacher-parallel', k: Number(m[1]) };
  throw new UsageError(`--baseline: expected 'marginals' or 'teacher-parallel:k' (k >= 1), got '${v}'`);
}

function mustExist(path: string, option: string, why = ''): string {
  if (!existsSync(path)) throw new UsageError(`${option}: ${path} does not exist${why}`);
  return path;
}

/** Builds the sampler the options ask for (it owns the models it loads). */
function dd2Sampler(raw: RawOptions, o: SampleOptions): { sampler: ImageSampler; files: Record<string, string> } {
  const files: Record<string, string> = {};
  const tokenizer = (recorded?: string): VQModel => {
    const p = raw.tokenizer ?? recorded;
    if (!p) throw new UsageError('--tokenizer: the checkpoint records no tokenizer; pass --tokenizer');
    files.tokenizer = resolve(mustExist(p, '--tokenizer', raw.tokenizer ? '' : ' (recorded in the checkpoint); pass --tokenizer'));
    return tidy(() => loadVQ(p));
  };
  const marginals = (vq: VQModel): Float32Array => {
    const p = siblingOr(raw.marginals, raw.generator ?? raw.model ?? '', 'marginals.safetensors');
    if (!p) throw new UsageError('--marginals: the baseline needs per-position marginals (marginals.safetensors of dd2 distill)');
    files.marginals = resolve(mustExist(p, '--marginals'));
    const m = loadMarginals(p);
    if (m.N * m.V !== vq.gridSize[0] * vq.gridSize[1] * vq.codebookSize) {
      throw new UsageError(`--marginals: ${p} is ${m.N} x ${m.V}, the tokenizer has ${vq.gridSize.join('x')} tokens of ${vq.codebookSize} codes`);
    }
    return m.table;
  };
  if (raw.baseline && raw.generator) throw new UsageError('--baseline: use either --generator or --baseline, not both');
  if (raw.fewStep !== undefined && !raw.generator) throw new UsageError('--few-step: needs --generator');
  if (raw.generator) {
    files.generator = resolve(mustExist(raw.generator, '--generator'));
    const { model: g, meta } = loadARDiffusion(raw.generator);
    let vq: VQModel | null = null;
    try {
      vq = tokenizer(meta.tokenizer);
      if (raw.fewStep === undefined || raw.fewStep === 1) return { sampler: oneStepSampler(g, vq, { snap: raw.snap }), files };
      const tPath = siblingOr(raw.model, raw.generator, 'teacher-continuous.safetensors');
      if (!tPath) throw new UsageError('--few-step: needs the continuous teacher: pass --model (a continuous-gpt checkpoint)');
      files.teacher = resolve(mustExist(tPath, '--model'));
      if (readKind(tPath) !== 'continuous-gpt') throw new UsageError(`--model: ${tPath} is not a continuous-gpt checkpoint (needed by --few-step)`);
      return { sampler: fewStepSampler(g, loadContinuousGPT(tPath).model, vq, raw.fewStep, { ...o, snap: raw.snap }), files };
    } catch (e) {
      g.dispose(); vq?.dispose();
      throw e;
    }
  }
  const b = raw.baseline!;
  if (b.kind === 'marginals') {
    let numClasses = raw.class ? Math.max(...raw.class) + 1 : 1, recorded: string | undefined;
    if (raw.model) {
      files.model = resolve(mustExist(raw.model, '--model'));
      const { model, tokenizer: tk } = loadTeacher(raw.model);
      numClasses = model instanceof GPT ? model.cfg.numClasses : model.cfg.gpt.numClasses;
      recorded = tk;
      model.dispose();
    }
    const vq = tokenizer(recorded);
    try {
      return { sampler: marginalsSampler(marginals(vq), vq, numClasses), files };
    } catch (e) { vq.dispose(); throw e; }
  }
  if (!raw.model) throw new UsageError('--baseline teacher-parallel: needs the teacher --model');
  files.model = resolve(mustExist(raw.model, '--model'));
  const { model, tokenizer: tk } = loadTeacher(raw.model);
  let vq: VQModel | null = null;
  try {
    vq = tokenizer(tk);
    const N = vq.gridSize[0] * vq.gridSize[1];
    if (b.k > N) throw new UsageError(`--baseline: k = ${b.k} exceeds the ${N} tokens of an image`);
    return { sampler: teacherParallelSampler(model, vq, b.k, marginals(vq), o), files };
  } catch (e) {
    model.dispose(); vq?.dispose();
    throw e;
  }
}

/** `dd2 sample` in a DD2 mode: same outputs as the teacher mode (latents instead of tokens when continuous). */
function runDD2Sample(raw: RawOptions): void {
  const o: SampleOptions = { cfg: raw.cfg, temperature: raw.temperature, topK: raw.topK, topP: raw.topP };
  const { sampler, files } = dd2Sampler(raw, o);
  try {
    const K = sampler.numClasses;
    const classes = raw.class ?? Array.from({ length: K }, (_, i) => i);
    const bad = classes.find((c) => c >= K);
    if (bad !== undefined) throw new UsageError(`--class: ${bad} is not a class of this model (0..${K - 1})`);
    const { channels: C, size: S } = sampler;
    if (C !== 1 && C !== 3) throw new Error(`dd2: sample: images with ${C} channels cannot be written as PNG`);
    const n = raw.n, labels = Int32Array.from({ length: n }, (_, i) => classes[i % classes.length]);
    const images = new Uint8Array(n * S * S * C);
    let latents: { dtype: 'int32' | 'float32'; shape: number[]; parts: (Int32Array | Float32Array)[] } | null = null;
    const t0 = performance.now();
    const progress = new Progress(n, 'sample', { json: raw.json });
    for (let s = 0, b = 0; s < n; s += raw.batchSize, b++) {
      const lab = labels.subarray(s, Math.min(n, s + raw.batchSize));
      noGrad(() => tidy(() => {
        const z = sampler.generate(lab, raw.seed * 65536 + b);
        if (!latents) latents = { dtype: z.dtype === 'int32' ? 'int32' : 'float32', shape: z.shape.slice(1), parts: [] };
        latents.parts.push(z.dtype === 'int32' ? z.toInt32Array() : z.toFloat32Array());
        images.set(toUint8Images(sampler.decode(z)), s * S * S * C);
      }));
      progress.tick(lab.length);
    }
    progress.done();
    const seconds = (performance.now() - t0) / 1000;
    mkdirSync(raw.out, { recursive: true });
    writeGrid(join(raw.out, 'grid.png'), images, n, S, S, C, raw.nrow);
    if (raw.perImage) {
      for (let i = 0; i < n; i++) {
        writePng(join(raw.out, `${String(i).padStart(5, '0')}-class${labels[i]}.png`), images.subarray(i * S * S * C, (i + 1) * S * S * C), S, S, C);
      }
    }
    const lat = latents!;
    const total = lat.parts.reduce((a, p) => a + p.length, 0);
    const flat = lat.dtype === 'int32' ? new Int32Array(total) : new Float32Array(total);
    lat.parts.reduce((at, p) => { flat.set(p, at); return at + p.length; }, 0);
    writeNpz(join(raw.out, 'samples.npz'), {
      [lat.dtype === 'int32' ? 'tokens' : 'latents']: { dtype: lat.dtype, shape: [n, ...lat.shape], data: flat },
      labels: { dtype: 'int32', shape: [n], data: labels },
      images: { dtype: 'uint8', shape: [n, S, S, C], data: images },
    });
    const teacherSettings = sampler.name.startsWith('dd2-1step') || sampler.name === 'marginals' ? {} : o;
    const manifest = { kind: 'dd2-samples', mode: sampler.name, steps: sampler.steps, ...files, n, classes, seed: raw.seed,
      batchSize: raw.batchSize, batchSeeds: 'seed * 65536 + batch index', snap: raw.snap || undefined, ...teacherSettings,
      image: [S, S, C] };
    writeFileAtomic(join(raw.out, 'samples.json'), JSON.stringify(manifest, null, 2) + '\n');
    info(`sample: ${n} images (${sampler.name}, ${sampler.steps} passes each) in ${seconds.toFixed(1)} s -> ${raw.out}`);
    emitSummary(raw.json, { out: raw.out, grid: join(raw.out, 'grid.png'), npz: join(raw.out, 'samples.npz'), n, mode: sampler.name,
      steps: sampler.steps, classes: classes.join(','), seed: raw.seed, seconds: Number(seconds.toFixed(2)) });
  } finally {
    sampler.dispose();
  }
}
