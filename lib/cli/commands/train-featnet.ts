// `dd2 train featnet`: trains the domain feature network (lib/metrics/feature-net.ts) of a dataset and writes
// <out>/<name>.safetensors (weights; the meta records dataset, recipe, accuracies, sha256 and floors) and
// <out>/<name>-stats.npz (float64 mu/sigma of the train and test features). With --out assets/featnet it
// remakes the shipped files: do not do that silently, a new network invalidates every dFID measured before.
// The run takes minutes and keeps no checkpoints, so --resume is refused. --floors <file> only measures the
// real-vs-real floors of an existing file (for files written where lib/metrics/fid.ts could not run).
import { Command, Option } from 'commander';
import { addFloorsToFile, defaultTrainFeatureNetOptions, featnetName, trainFeatureNet, type TrainFeatureNetOptions } from '../../train/feature-net.js';
import type { Device } from '../../tensor/dtype.js';
import { addCommonOptions, emitSummary, info, parseFloatArg, parseIntArg, UsageError, useDevice } from '../options.js';

interface RawOptions {
  dataset: string; name?: string; epochs: number; batchSize: number; lr: number; minLr: number; warmup: number; weightDecay: number;
  clip: number; shift: number; floors?: string; trainLimit: number; evalLimit: number; logEvery: number; device: Device; seed: number; out?: string;
  json: boolean; resume: boolean;
}

export function makeTrainFeatnetCommand(): Command {
  const d = defaultTrainFeatureNetOptions;
  const int = (name: string, min = 1) => parseIntArg(name, { min });
  const cmd = new Command('featnet')
    .description('train the small CNN classifier whose features give the domain metrics (dFID, dIS, dPPL) of a dataset')
    .addOption(new Option('--dataset <name|folder>', "'mnist', 'fashion-mnist' or a folder of PNGs with 10 classes (made 1-channel 28x28)")
      .default(d.dataset))
    .addOption(new Option('--name <base>', 'base name of the output files (default: the dataset name)'))
    .addOption(new Option('--epochs <n>', 'passes over the training split').default(d.epochs).argParser(int('--epochs')))
    .addOption(new Option('--batch-size <n>', 'images per step').default(d.batchSize).argParser(int('--batch-size')))
    .addOption(new Option('--lr <x>', 'peak learning rate').default(d.lr).argParser(parseFloatArg('--lr', { above: 0 })))
    .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine').default(d.minLr).argParser(parseFloatArg('--min-lr', { min: 0 })))
    .addOption(new Option('--warmup <n>', 'linear warm-up steps').default(d.warmup).argParser(int('--warmup', 0)))
    .addOption(new Option('--weight-decay <x>', 'AdamW weight decay (conv and linear weights only)').default(d.weightDecay)
      .argParser(parseFloatArg('--weight-decay', { min: 0 })))
    .addOption(new Option('--clip <x>', 'gradient-norm clipping').default(d.clip).argParser(parseFloatArg('--clip', { above: 0 })))
    .addOption(new Option('--shift <px>', 'random translation of training images by up to ±px pixels (0 = none)').default(d.shift)
      .argParser(parseIntArg('--shift', { min: 0, max: 8 })))
    .addOption(new Option('--train-limit <n>', 'use the first n training images (0 = all)').default(d.trainLimit).argParser(int('--train-limit', 0)))
    .addOption(new Option('--eval-limit <n>', 'evaluate on the first n test images (0 = all)').default(d.evalLimit).argParser(int('--eval-limit', 0)))
    .addOption(new Option('--floors <weights>', 'train nothing: measure the real-vs-real dFID floors of an existing ' +
      'feature network file and record them in its meta (weights unchanged)'))
    .addOption(new Option('--log-every <n>', 'a progress line with the mean loss and accuracy every n steps').default(200)
      .argParser(int('--log-every')));
  addCommonOptions(cmd, { out: 'runs/featnet' });
  cmd.action(async (raw: RawOptions) => {
    if (raw.floors) {
      info(`train featnet: measuring the floors of ${raw.floors}`);
      emitSummary(raw.json, { model: raw.floors, floors: await addFloorsToFile(raw.floors) });
      return;
    }
    if (raw.resume) throw new UsageError('--resume: train featnet keeps no checkpoints (a run takes minutes); run it again');
    if (!raw.out) throw new UsageError('--out: an output folder is required (see --help)');
    useDevice(raw.device);
    const o: TrainFeatureNetOptions = {
      ...defaultTrainFeatureNetOptions, dataset: raw.dataset, name: raw.name ?? featnetName(raw.dataset), epochs: raw.epochs,
      batchSize: raw.batchSize, lr: raw.lr, minLr: raw.minLr, warmup: raw.warmup, weightDecay: raw.weightDecay, clip: raw.clip,
      shift: raw.shift, seed: raw.seed, trainLimit: raw.trainLimit, evalLimit: raw.evalLimit,
    };
    info(`train featnet: ${o.dataset}, ${o.epochs} epochs of batches of ${o.batchSize}, writing ${raw.out}/${o.name}.safetensors`);
    const r = await trainFeatureNet(raw.out, o, {
      json: raw.json, logEvery: raw.logEvery,
      onLog: raw.json ? undefined : (e) => info(`step ${e.step} epoch ${e.epoch}: loss ${e.loss.toFixed(4)} acc ${(100 * e.accuracy).toFixed(2)}% ` +
        `lr ${e.lr.toExponential(2)} |g| ${e.gradNorm.toFixed(3)} ${e.seconds.toFixed(0)} s`),
    });
    try {
      emitSummary(raw.json, {
        model: r.modelPath, stats: r.statsPath ?? undefined, steps: r.steps, params: r.params, seconds: Number(r.seconds.toFixed(1)),
        trainSeconds: Number(r.trainSeconds.toFixed(1)), trainLoss: r.trainLoss, testAccuracy: r.testAccuracy,
        trainAccuracy: r.trainAccuracy ?? undefined, testImages: r.testImages, trainImages: r.trainImages, sha256: r.sha256,
        floors: r.floors ?? undefined, floorsError: r.floorsError,
      });
    } finally {
      r.net.dispose();
    }
  });
  return cmd;
}
