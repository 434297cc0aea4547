// `dd2 encode`: encodes a dataset split once with a trained VQ tokenizer into a token cache (safetensors
// 'tokens' I32 (N, h·w) and 'labels' I32 (N), see lib/train/token-cache.ts) for `dd2 train ar`.
// Defaults: the tokenizer of `dd2 train tokenizer` and runs/tokens/<dataset>-<split>.safetensors, the
// cache `dd2 train ar` reads by default.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { encodeToCache } from '../../train/token-cache.js';
import { Progress } from '../../io/progress.js';
import type { Device } from '../../tensor/dtype.js';
import { emitSummary, info, parseChoiceArg, parseIntArg, UsageError, useDevice } from '../options.js';

export const DEFAULT_TOKENIZER = 'runs/tokenizer/vq.safetensors';

interface RawOptions {
  tokenizer: string; dataset: string; split: 'train' | 'test'; out?: string; batchSize: number; limit?: number;
  device: Device; json: boolean;
}

/** runs/tokens/<dataset>-<split>.safetensors, with a folder dataset named by its last path component. */
export function defaultTokensPath(dataset: string, split: string): string {
  const name = basename(dataset.replace(/[/\\]+$/, '')).replace(/[^A-Za-z0-9_.-]/g, '_') || 'dataset';
  return `runs/tokens/${name}-${split}.safetensors`;
}

export function makeEncodeCommand(): Command {
  const cmd = new Command('encode')
    .description('encode a dataset split with a VQ tokenizer into a token cache for dd2 train ar')
    .addOption(new Option('--tokenizer <file>', 'VQ tokenizer checkpoint (from dd2 train tokenizer)').default(DEFAULT_TOKENIZER))
    .addOption(new Option('--dataset <name|folder>', "'mnist', 'fashion-mnist' or a folder of PNG images").default('mnist'))
    .addOption(new Option('--split <split>', 'train or test').default('train').argParser(parseChoiceArg('--split', ['train', 'test'] as const)))
    .addOption(new Option('--out <file>', 'token cache to write (default runs/tokens/<dataset>-<split>.safetensors)'))
    .addOption(new Option('--batch-size <n>', 'images per forward pass').default(500).argParser(parseIntArg('--batch-size', { min: 1 })))
    .addOption(new Option('--limit <n>', 'encode only the first n images').argParser(parseIntArg('--limit', { min: 1 })))
    .addOption(new Option('--device <cpu|cuda>', 'where to compute').default('cpu')
      .argParser(parseChoiceArg('--device', ['cpu', 'cuda'] as const)))
    .addOption(new Option('--json', 'print a machine-readable JSON summary on stdout (messages go to stderr)').default(false));
  cmd.action(async (raw: RawOptions) => {
    useDevice(raw.device);
    if (!existsSync(raw.tokenizer)) {
      throw new UsageError(`--tokenizer: ${raw.tokenizer} does not exist (train one with dd2 train tokenizer, or pass --tokenizer)`);
    }
    const out = raw.out ?? defaultTokensPath(raw.dataset, raw.split);
    info(`encode: ${raw.dataset} ${raw.split} with ${raw.tokenizer} -> ${out}`);
    const r = await encodeToCache({
      tokenizer: raw.tokenizer, dataset: raw.dataset, split: raw.split, out, batchSize: raw.batchSize, limit: raw.limit,
      progress: (total) => new Progress(total, 'encode', { json: raw.json }),
    });
    emitSummary(raw.json, { out: r.out, images: r.images, grid: r.grid, codebookSize: r.codebookSize, codesUsed: r.codesUsed,
      seconds: Number(r.seconds.toFixed(1)) });
  });
  return cmd;
}
