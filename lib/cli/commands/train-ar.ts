// `dd2 train ar`: trains the LlamaGen-style AR teacher on a token cache written by `dd2 encode`, in a run
// folder (run.json, log.jsonl, checkpoints, gpt.safetensors). The command is named 'ar'; the lead adds it
// under the `train` command. --resume continues the run in --out with the options stored in its run.json.
import { Command, Option } from 'commander';
import { defaultTrainArOptions, trainAR, type TrainArOptions } from '../../train/ar.js';
import { gptSize, type GPTConfig } from '../../models/gpt.js';
import type { Device } from '../../tensor/dtype.js';
import { addCommonOptions, emitSummary, info, openRunDir, parseFloatArg, parseIntArg, UsageError, useDevice }
  from '../options.js';

/** Default token cache: what `dd2 encode` writes for MNIST with its defaults. */
export const DEFAULT_TRAIN_TOKENS = 'runs/tokens/mnist-train.safetensors';

interface RawOptions {
  tokens: string; testTokens?: string; size: string; dim?: number; layers?: number; heads?: number;
  classDropout: number; dropout?: number; steps: number; batchSize: number; accum: number; lr: number; minLr: number;
  warmup: number; weightDecay: number; beta2: number; clip: number; ema: number; ckptEvery: number; logEvery: number;
  evalEvery: number; evalLimit: number; device: Device; seed: number; out?: string; json: boolean; resume: boolean;
}

function toOptions(r: RawOptions): TrainArOptions {
  const model: Partial<GPTConfig> = { classDropoutProb: r.classDropout };
  if (r.dim !== undefined) model.dim = r.dim;
  if (r.layers !== undefined) model.nLayer = r.layers;
  if (r.heads !== undefined) model.nHead = r.heads;
  if (r.dropout !== undefined) Object.assign(model, { tokenDropoutP: r.dropout, residDropoutP: r.dropout, ffnDropoutP: r.dropout });
  return {
    ...defaultTrainArOptions, tokens: r.tokens, testTokens: r.testTokens, size: r.size, model, steps: r.steps,
    batchSize: r.batchSize, accum: r.accum, lr: r.lr, minLr: r.minLr, warmup: r.warmup, weightDecay: r.weightDecay,
    betas: [0.9, r.beta2], clip: r.clip, emaDecay: r.ema, seed: r.seed, ckptEvery: r.ckptEvery, logEvery: r.logEvery,
    evalEvery: r.evalEvery, evalLimit: r.evalLimit,
  };
}

export function makeTrainArCommand(): Command {
  const d = defaultTrainArOptions;
  const int = (name: string, min = 1) => parseIntArg(name, { min });
  const cmd = new Command('ar')
    .description('train the class-conditional AR teacher (LlamaGen-style GPT) on a token cache from dd2 encode')
    .addOption(new Option('--tokens <file>', 'token cache of the training split (from dd2 encode)').default(DEFAULT_TRAIN_TOKENS))
    .addOption(new Option('--test-tokens <file>', 'token cache for the test NLL (default: the --tokens path with "train" ' +
      'replaced by "test" if that file exists, else the last 10% of the training rows)'))
    .addOption(new Option('--size <name>', 'model size: tiny, small, GPT-B, GPT-L, GPT-XL').default(d.size).argParser((v: string) => {
      try { gptSize(v); } catch (e) { throw new UsageError(`--size: ${(e as Error).message.replace(/^dd2: /, '')}`); }
      return v;
    }))
    .addOption(new Option('--dim <n>', 'override the model width').argParser(int('--dim', 4)))
    .addOption(new Option('--layers <n>', 'override the number of layers').argParser(int('--layers')))
    .addOption(new Option('--heads <n>', 'override the number of attention heads').argParser(int('--heads')))
    .addOption(new Option('--class-dropout <p>', 'probability of replacing a label by the null class (for CFG)').default(0.1)
      .argParser(parseFloatArg('--class-dropout', { min: 0, below: 1 })))
    .addOption(new Option('--dropout <p>', 'token, residual and MLP dropout (default: 0 for tiny, 0.1 for small and GPT-B/L/XL)')
      .argParser(parseFloatArg('--dropout', { min: 0, below: 1 })))
    .addOption(new Option('--steps <n>', 'optimiser steps').default(d.steps).argParser(int('--steps')))
    .addOption(new Option('--batch-size <n>', 'images per micro-batch').default(d.batchSize).argParser(int('--batch-size')))
    .addOption(new Option('--accum <n>', 'micro-batches per step (gradient accumulation)').default(d.accum).argParser(int('--accum')))
    .addOption(new Option('--lr <x>', 'peak learning rate').default(d.lr).argParser(parseFloatArg('--lr', { above: 0 })))
    .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine').default(d.minLr)
      .argParser(parseFloatArg('--min-lr', { min: 0 })))
    .addOption(new Option('--warmup <n>', 'linear warm-up steps').default(d.warmup).argParser(int('--warmup', 0)))
    .addOption(new Option('--weight-decay <x>', 'AdamW weight decay (matrices only)').default(d.weightDecay)
      .argParser(parseFloatArg('--weight-decay', { min: 0 })))
    .addOption(new Option('--beta2 <x>', 'AdamW beta2 (beta1 is 0.9)').default(d.betas[1])
      .argParser(parseFloatArg('--beta2', { min: 0, below: 1 })))
    .addOption(new Option('--clip <x>', 'gradient-norm clipping').default(d.clip).argParser(parseFloatArg('--clip', { above: 0 })))
    .addOption(new Option('--ema <decay>', 'EMA decay of the weights (warmed up as min(decay, (1+u)/(10+u)))')
      .default(d.emaDecay).argParser(parseFloatArg('--ema', { min: 0, max: 1 })))
    .addOption(new Option('--ckpt-every <n>', 'checkpoint every n steps (and at the end)').default(d.ckptEvery)
      .argParser(int('--ckpt-every')))
    .addOption(new Option('--log-every <n>', 'log.jsonl line every n steps').default(d.logEvery).argParser(int('--log-every')))
    .addOption(new Option('--eval-every <n>', 'NLL on the first --eval-limit test images every n steps (0: never)')
      .default(d.evalEvery).argParser(int('--eval-every', 0)))
    .addOption(new Option('--eval-limit <n>', 'test images for the periodic NLL and for choosing live or EMA weights')
      .default(d.evalLimit).argParser(int('--eval-limit')));
  addCommonOptions(cmd, { out: 'runs/ar' });
  cmd.action((raw: RawOptions) => {
    useDevice(raw.device);
    let opts: TrainArOptions;
    const run = openRunDir(raw, { command: 'train ar', options: (opts = toOptions(raw)) });
    if (raw.resume) {
      const stored = (run.config as { command?: string; options?: TrainArOptions } | null);
      if (stored?.command !== 'train ar' || !stored.options) throw new UsageError(`--resume: ${run.dir} is not a 'train ar' run`);
      opts = stored.options;
      info(`train ar: resuming ${run.dir} with its stored options (command-line training options are ignored)`);
    }
    info(`train ar: ${opts.size} on ${opts.tokens}, ${opts.steps} steps of ${opts.batchSize}x${opts.accum} images, ` +
      `run folder ${run.dir}`);
    const r = trainAR(run, opts, { json: raw.json });
    emitSummary(raw.json, {
      model: r.modelPath, weights: r.weights, steps: r.step, seconds: Number(r.seconds.toFixed(1)), params: r.params,
      trainLoss: r.trainLoss, testNll: r.testNll, evalNllLive: r.evalNllLive, evalNllEma: r.evalNllEma,
      unigramTestCrossEntropy: r.unigramTestCrossEntropy, unigramEntropy: r.unigramEntropy, bitsPerToken: r.bitsPerToken,
      bitsPerDim: r.bitsPerDim ?? undefined, tokenizer: r.tokenizer, runDir: r.runDir,
    });
  });
  return cmd;
}
