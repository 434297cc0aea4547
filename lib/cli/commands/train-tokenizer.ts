// `dd2 train tokenizer`: trains the VQ tokenizer (lib/models/vq.ts) on a dataset in a run folder (run.json,
// log.jsonl, checkpoints, vq.safetensors, reconstructions.png) and reports the test PSNR and code usage.
// The command is named 'tokenizer'; the lead adds it under the `train` command. --resume continues the run
// in --out with the options stored in its run.json.
import { Command, Option } from 'commander';
import { defaultTrainTokenizerOptions, trainTokenizer, type TrainTokenizerOptions } from '../../train/tokenizer.js';
import { defaultVQConfig, levelsFor, type VQConfig } from '../../models/vq.js';
import type { Device } from '../../tensor/dtype.js';
import { addCommonOptions, emitSummary, info, openRunDir, parseChoiceArg, parseFloatArg, parseIntArg, UsageError, useDevice }
  from '../options.js';

interface RawOptions {
  dataset: string; imageSize: number; downsample: number; codebookSize: number; codeDim: number; channels: number;
  beta: number; entropyWeight: number; steps: number; batchSize: number; lr: number; minLr: number; warmup: number;
  weightDecay: number; clip: number; ema: number; recon: 'mse' | 'l1+mse'; restartEvery: number; ckptEvery: number;
  logEvery: number; trainLimit: number; evalLimit: number; device: Device; seed: number; out?: string; json: boolean;
  resume: boolean;
}

function toOptions(r: RawOptions): TrainTokenizerOptions {
  if (r.imageSize % r.downsample !== 0) {
    throw new UsageError(`--downsample ${r.downsample} does not divide --image-size ${r.imageSize}`);
  }
  const model: Partial<VQConfig> = {
    imageSize: r.imageSize, ...levelsFor(r.downsample), codebookSize: r.codebookSize,
    codeDim: r.codeDim, channels: r.channels, beta: r.beta, entropyWeight: r.entropyWeight,
  };
  return {
    ...defaultTrainTokenizerOptions, dataset: r.dataset, model, steps: r.steps, batchSize: r.batchSize, lr: r.lr,
    minLr: r.minLr, warmup: r.warmup, weightDecay: r.weightDecay, clip: r.clip, emaDecay: r.ema, recon: r.recon,
    restartEvery: r.restartEvery, seed: r.seed, ckptEvery: r.ckptEvery, logEvery: r.logEvery, trainLimit: r.trainLimit,
    evalLimit: r.evalLimit,
  };
}

export function makeTrainTokenizerCommand(): Command {
  const d = defaultTrainTokenizerOptions, m = defaultVQConfig;
  const int = (name: string, min = 1) => parseIntArg(name, { min });
  const num = (name: string, rule = { min: 0 }) => parseFloatArg(name, rule);
  const cmd = new Command('tokenizer')
    .description('train the VQ image tokenizer (LlamaGen-style, L2-normalised codebook) on a dataset')
    .addOption(new Option('--dataset <name|folder>', "'mnist', 'fashion-mnist' or a folder of PNG images").default(d.dataset))
    .addOption(new Option('--image-size <n>', 'images are resized to n x n').default(m.imageSize).argParser(int('--image-size', 2)))
    .addOption(new Option('--downsample <f>', 'image size / token grid size: 4 (28x28 -> 7x7 tokens) or 2 (-> 14x14)')
      .default(m.downsample).argParser((v: string) => Number(parseChoiceArg('--downsample', ['2', '4', '8'] as const)(v))))
    .addOption(new Option('--codebook-size <k>', 'number of codes').default(m.codebookSize).argParser(int('--codebook-size', 2)))
    .addOption(new Option('--code-dim <d>', 'dimension of a code').default(m.codeDim).argParser(int('--code-dim')))
    .addOption(new Option('--channels <n>', 'base width of the encoder and decoder').default(m.channels).argParser(int('--channels')))
    .addOption(new Option('--beta <x>', 'commitment loss weight').default(m.beta).argParser(num('--beta')))
    .addOption(new Option('--entropy-weight <x>', "weight of LlamaGen's codebook entropy term (0 = off)").default(m.entropyWeight)
      .argParser(num('--entropy-weight')))
    .addOption(new Option('--steps <n>', 'optimiser steps').default(d.steps).argParser(int('--steps')))
    .addOption(new Option('--batch-size <n>', 'images per step').default(d.batchSize).argParser(int('--batch-size')))
    .addOption(new Option('--lr <x>', 'peak learning rate').default(d.lr).argParser(parseFloatArg('--lr', { above: 0 })))
    .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine').default(d.minLr).argParser(num('--min-lr')))
    .addOption(new Option('--warmup <n>', 'linear warm-up steps').default(d.warmup).argParser(int('--warmup', 0)))
    .addOption(new Option('--weight-decay <x>', 'AdamW weight decay (conv weights only)').default(d.weightDecay)
      .argParser(num('--weight-decay')))
    .addOption(new Option('--clip <x>', 'gradient-norm clipping').default(d.clip).argParser(parseFloatArg('--clip', { above: 0 })))
    .addOption(new Option('--ema <decay>', 'EMA decay of the weights (0 = off)').default(d.emaDecay)
      .argParser(parseFloatArg('--ema', { min: 0, max: 1 })))
    .addOption(new Option('--recon <loss>', 'reconstruction loss: mse or l1+mse').default(d.recon)
      .argParser(parseChoiceArg('--recon', ['mse', 'l1+mse'] as const)))
    .addOption(new Option('--restart-every <n>', 'restart codes unused in the last n batches, every n steps (0 = never)')
      .default(d.restartEvery).argParser(int('--restart-every', 0)))
    .addOption(new Option('--ckpt-every <n>', 'checkpoint every n steps (and at the end)').default(d.ckptEvery).argParser(int('--ckpt-every')))
    .addOption(new Option('--log-every <n>', 'log.jsonl line every n steps').default(d.logEvery).argParser(int('--log-every')))
    .addOption(new Option('--train-limit <n>', 'use the first n training images (0 = all)').default(d.trainLimit)
      .argParser(int('--train-limit', 0)))
    .addOption(new Option('--eval-limit <n>', 'evaluate on the first n test images (0 = all)').default(d.evalLimit)
      .argParser(int('--eval-limit', 0)));
  addCommonOptions(cmd, { out: 'runs/tokenizer' });
  cmd.action(async (raw: RawOptions) => {
    useDevice(raw.device);
    let opts = toOptions(raw);
    const run = openRunDir(raw, { command: 'train tokenizer', options: opts });
    if (raw.resume) {
      const stored = run.config as { command?: string; options?: TrainTokenizerOptions } | null;
      if (stored?.command !== 'train tokenizer' || !stored.options) throw new UsageError(`--resume: ${run.dir} is not a 'train tokenizer' run`);
      opts = stored.options;
      info(`train tokenizer: resuming ${run.dir} with its stored options (command-line training options are ignored)`);
    }
    info(`train tokenizer: ${opts.dataset}, ${opts.steps} steps of ${opts.batchSize} images, run folder ${run.dir}`);
    const r = await trainTokenizer(run, opts, { json: raw.json });
    const t = r.test!;
    emitSummary(raw.json, {
      model: r.modelPath, reconstructions: r.gridPath, steps: r.step, seconds: Number(r.seconds.toFixed(1)),
      trainSeconds: Number(r.trainSeconds.toFixed(1)), params: r.params, grid: [r.config.imageSize / r.config.downsample,
        r.config.imageSize / r.config.downsample], codebookSize: r.config.codebookSize, trainLoss: r.trainLoss,
      testPsnr: t.psnr, testMse: t.mse, codesUsed: t.codesUsed, codesUsedFraction: t.codesUsedFraction,
      perplexity: t.perplexity, testImages: t.images, restarts: r.restarts, runDir: r.runDir,
    });
  });
  return cmd;
}
