// `dd2 sample`: draws images from a trained AR teacher (a 'gpt' checkpoint) with classifier-free guidance,
// temperature, top-k and top-p, decodes the tokens with the VQ tokenizer the model was trained on, and
// writes grid.png, optionally one PNG per image, samples.npz (tokens int32 (n, h·w), labels int32 (n),
// images uint8 (n, H, W, C)) and samples.json (what was run). The same seed gives the same bytes.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { tensor } from '../../tensor/create.js';
import { noGrad, tidy } from '../../tensor/engine.js';
import { Generator } from '../../tensor/random.js';
import type { Device } from '../../tensor/dtype.js';
import { loadGPTWithMeta, type GPT } from '../../models/gpt.js';
import { loadVQ, type VQModel } from '../../models/vq.js';
import { sampleTokens, type SampleOptions } from '../../sample/ar-sample.js';
import { toUint8Images } from '../../data/dataset.js';
import { writeGrid, writePng } from '../../io/png.js';
import { writeNpz } from '../../io/npz.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { Progress } from '../../io/progress.js';
import { emitSummary, info, parseChoiceArg, parseFloatArg, parseIntArg, parseIntListArg, UsageError, useDevice } from '../options.js';

interface RawOptions {
  model: string; tokenizer?: string; class?: number[]; cfg: number; n: number; batchSize: number; temperature: number;
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
    .requiredOption('--model <file>', 'model checkpoint (gpt.safetensors from dd2 train ar)')
    .option('--tokenizer <file>', 'VQ tokenizer checkpoint (default: the one recorded in the model checkpoint)')
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
      const manifest = { kind: 'gpt-samples', model: resolve(raw.model), tokenizer: resolve(vqPath), n: raw.n, classes,
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
