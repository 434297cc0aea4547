// `dd2 eval`: one table of FID, IS, precision/recall, class accuracy, PPL and speed for samples files
// (--samples, as written by `dd2 sample` or in the ADM layout) and/or checkpoints sampled on the fly
// (--model: the AR teacher, or anything lib/eval/registry.ts has a factory for). Prints the table (or JSON with
// --json) on stdout, messages on stderr, and writes eval.json to --out when given. The run is
// lib/eval/run-eval.ts runEval; this file parses and checks the options.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import type { Device } from '../../tensor/dtype.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { Progress } from '../../io/progress.js';
import { DOMAIN_DATASETS, evalJson, pickDataset, runEval, type EvalConfig } from '../../eval/run-eval.js';
import { formatTable } from '../../eval/table.js';
import { emitSummary, info, parseChoiceArg, parseFloatArg, parseIntArg, parseIntListArg, UsageError, useDevice } from '../options.js';

interface RawOptions {
  samples?: string[]; model?: string[]; tokenizer?: string; dataset?: 'mnist' | 'fashion-mnist'; ref?: string; inception?: string; featnet?: string;
  n?: number; class?: number[]; cfg: number; temperature: number; topK: number; topP: number; ppl: number;
  speed: boolean; repeats: number; warmup: number; batchSize: number; resize: boolean; device: Device; seed: number;
  out?: string; json: boolean;
}

const HELP = `
What the numbers are (all computed in one feature space; every number is printed with n, the network
(name@sha256 prefix) and the reference; compare rows only within one table):
  FID        Fréchet distance between Gaussians fitted to the features of the samples and of the reference
             (default: the test split of --dataset, statistics shipped with the feature network). Biased by n:
             compare only at equal n. With the domain network this is "dFID" (DATA-EVAL.md §4.1), not
             comparable to InceptionV3 FID numbers of papers.
  IS         exp(E_x KL(p(y|x) || p(y))) over the network's classifier, mean ± std over 10 splits.
  prec/recall  improved precision/recall (k = 3): the fraction of samples inside the union of the reference
             images' 3-NN balls / of reference images inside the samples' balls; the reference images are the
             first n images of the reference split.
  class acc  fraction of class-conditional samples the classifier assigns to the requested class.
  PPL        perceptual path length of noise-driven generators (--ppl <pairs>): slerp between two noise draws
             at t and t + 1e-4 (radius sqrt(N·C)), same class, d / 1e-4^2 with the domain network's LPIPS-style
             distance ("dPPL (domain net)"), 1st/99th percentile filter, mean. '-' for the AR teacher.
  latency    milliseconds to generate + decode ONE image (batch 1), median of --repeats runs after --warmup.
  img/s      images per second at --batch-size (generate + decode).
  speed-up   the first row's latency divided by this row's.
  steps      model inferences (forward passes) per image.
Rows: each --model's samplers in order (--n images each, labels uniform over the classes from --seed, or
cycling through --class), then each --samples file (its first --n images). A --ref holding only statistics
(mu/sigma) gives no precision/recall: those need reference images.`;

export function makeEvalCommand(): Command {
  const cmd = new Command('eval')
    .description('evaluate samples: FID, IS, precision/recall, class accuracy, PPL and speed, in one table')
    .addOption(new Option('--samples <files...>', 'samples .npz files (dd2 sample: images/labels/tokens; or ADM arr_0/arr_1)'))
    .addOption(new Option('--model <files...>', 'checkpoints to sample --n images from (repeatable): AR teacher (gpt), DD2 generators'))
    .option('--tokenizer <file>', 'VQ tokenizer for --model (default: the one recorded in each checkpoint)')
    .addOption(new Option('--dataset <name>', 'mnist | fashion-mnist: picks the feature network and the reference ' +
      '(default: from the checkpoint\'s tokenizer, else mnist)').argParser(parseChoiceArg('--dataset', DOMAIN_DATASETS)))
    .option('--featnet <file>', 'domain feature network from `dd2 train featnet` (default: the one shipped for --dataset)')
    .option('--inception <weights>', 'measure FID/IS/precision/recall with the FID InceptionV3 from these weights (a ' +
      '.safetensors with pytorch-fid key names, see docs/inception.md) instead of the domain network')
    .option('--ref <spec>', "FID reference: 'dataset:split' (e.g. mnist:test, the default for --dataset) or a stats .npz " +
      "(mu/sigma; mu_test/sigma_test; ADM arr_0)")
    .addOption(new Option('--n <count>', 'images per --model (default 10000); for --samples, use the first n of each file')
      .argParser(parseIntArg('--n', { min: 2 })))
    .addOption(new Option('--class <list>', 'class label(s) cycled over the --model images (default: uniform random)')
      .argParser(parseIntListArg('--class', { min: 0 })))
    .addOption(new Option('--cfg <scale>', 'classifier-free guidance scale for --model (1 = none)').default(2.0).argParser(parseFloatArg('--cfg')))
    .addOption(new Option('--temperature <t>', 'softmax temperature for --model').default(1.0).argParser(parseFloatArg('--temperature', { above: 0 })))
    .addOption(new Option('--top-k <k>', 'top-k for --model (0 = all)').default(0).argParser(parseIntArg('--top-k', { min: 0 })))
    .addOption(new Option('--top-p <p>', 'top-p for --model (1 = off)').default(1.0).argParser(parseFloatArg('--top-p', { above: 0, max: 1 })))
    .addOption(new Option('--ppl <pairs>', 'interpolation pairs for PPL of noise-driven generators (0 = off)').default(0)
      .argParser(parseIntArg('--ppl', { min: 0 })))
    .option('--speed', 'time generation and decoding of each --model (default)')
    .option('--no-speed', 'skip the timing')
    .addOption(new Option('--repeats <r>', 'timed runs per speed setting (median reported)').default(3).argParser(parseIntArg('--repeats', { min: 1 })))
    .addOption(new Option('--warmup <w>', 'untimed runs before timing').default(1).argParser(parseIntArg('--warmup', { min: 0 })))
    .addOption(new Option('--batch-size <n>', 'images per generator call, feature batch and throughput batch').default(64)
      .argParser(parseIntArg('--batch-size', { min: 1 })))
    .option('--resize', 'resample images whose size/channels differ from what the feature network takes', false)
    .addOption(new Option('--device <cpu|cuda>', 'where to compute').default('cpu').argParser(parseChoiceArg('--device', ['cpu', 'cuda'] as const)))
    .addOption(new Option('--seed <n>', 'random seed (integer >= 0)').default(0).argParser(parseIntArg('--seed', { min: 0 })))
    .option('--out <dir>', 'also write eval.json to this folder')
    .option('--json', 'print the table as JSON on stdout (messages go to stderr)', false)
    .addHelpText('after', HELP);
  cmd.action(async (raw: RawOptions) => {
    if (!raw.samples?.length && !raw.model?.length) throw new UsageError('eval: nothing to evaluate; pass --samples <file.npz> and/or --model <checkpoint>');
    for (const f of raw.samples ?? []) if (!existsSync(f)) throw new UsageError(`--samples: ${f} does not exist`);
    for (const f of raw.model ?? []) if (!existsSync(f)) throw new UsageError(`--model: ${f} does not exist`);
    for (const [opt, f] of [['--tokenizer', raw.tokenizer], ['--featnet', raw.featnet], ['--inception', raw.inception]] as const) {
      if (f && !existsSync(f)) throw new UsageError(`${opt}: ${f} does not exist`);
    }
    useDevice(raw.device);
    const t0 = performance.now();
    const { dataset, from } = pickDataset(raw.dataset, raw.model ?? [], raw.samples ?? [], raw.tokenizer);
    const hasDomainNet = (DOMAIN_DATASETS as readonly string[]).includes(dataset) || raw.featnet !== undefined;
    if (!hasDomainNet && (!raw.inception || raw.ppl > 0)) {
      throw new UsageError(`eval: the images come from '${dataset}' (${from}), which has no domain feature network; ` +
        `pass --dataset mnist|fashion-mnist${raw.ppl > 0 ? '' : ', or --inception <weights>'}`);
    }
    info(`eval: dataset ${dataset} (from ${from})`);
    const config: EvalConfig = {
      samples: raw.samples ?? [], models: raw.model ?? [], tokenizer: raw.tokenizer, dataset, featnet: raw.featnet,
      inception: raw.inception, ref: raw.ref, n: raw.n, classes: raw.class,
      sampling: { cfg: raw.cfg, temperature: raw.temperature, topK: raw.topK, topP: raw.topP },
      ppl: raw.ppl, speed: raw.speed !== false, repeats: raw.repeats, warmup: raw.warmup, batch: raw.batchSize,
      resize: raw.resize, seed: raw.seed,
    };
    const result = await runEval(config, { info, progress: (label, total) => new Progress(total, label, { json: raw.json }) });
    const json = evalJson(config, result, (performance.now() - t0) / 1000, raw.device);
    if (raw.out) {
      mkdirSync(raw.out, { recursive: true });
      writeFileAtomic(join(raw.out, 'eval.json'), JSON.stringify(json, null, 2) + '\n');
      info(`eval: wrote ${join(raw.out, 'eval.json')}`);
    }
    if (raw.json) emitSummary(true, json);
    else process.stdout.write(formatTable(result.rows) + '\n');
  });
  return cmd;
}
