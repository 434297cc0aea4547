// Which image samplers a checkpoint gives `dd2 eval --model` (and anything else that wants to draw images
// from a file): a factory per checkpoint meta.kind ('gpt' for the AR teacher; the distillation code
// registers its generators). A factory may return several samplers for one file, e.g. a one-step generator
// and its few-step variants; each becomes one row of the evaluation table.
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { META_KEY, type CheckpointMeta } from '../io/checkpoint.js';
import type { ImageSampler } from './sampler.js';
import { arSamplerFactory } from './ar-sampler.js';
import { dd2SamplerFactory } from './dd2-factory.js';

/** Sampling settings passed to every factory (each uses those that apply to it). */
export interface SamplerOptions {
  /** classifier-free guidance scale (1 = none) */
  cfg: number;
  temperature: number;
  /** 0 = off */
  topK: number;
  /** 1 = off */
  topP: number;
  /** tokenizer checkpoint overriding the one recorded in the model's meta */
  tokenizer?: string;
  /** images per generate() call the caller intends to use (a factory may size caches by it) */
  batch: number;
  /** DD2 generators: the few-step k values to add as rows (default [4] when the continuous teacher is there) */
  fewStep?: number[];
  /** DD2 generators: k of the teacher-parallel baseline rows (default [N/2]) */
  parallelK?: number[];
  /** DD2 generators: false = no baseline rows */
  baselines?: boolean;
}

export type SamplerFactory = (path: string, meta: CheckpointMeta, o: SamplerOptions) => ImageSampler[];

const factories = new Map<string, SamplerFactory>();

/** Registers (or replaces) the factory for checkpoints whose meta.kind is `kind`. */
export function registerSamplerFactory(kind: string, f: SamplerFactory): void {
  if (!kind) throw new TypeError('dd2: registerSamplerFactory: kind must be a non-empty string');
  factories.set(kind, f);
}

/** The checkpoint kinds that have a factory. */
export function samplerKinds(): string[] {
  return [...factories.keys()].sort();
}

/** The dd2 meta of a safetensors checkpoint, read from its header only (the tensors are not loaded). */
export function readCheckpointMeta(path: string): CheckpointMeta {
  if (!existsSync(path)) throw new Error(`dd2: --model: ${path} does not exist`);
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) throw new Error(`dd2: ${path} is not a safetensors file (shorter than 8 bytes)`);
    const len = Number(head.readBigUInt64LE(0));
    if (!(len > 1 && len < 100e6)) throw new Error(`dd2: ${path} is not a safetensors file (header length ${len})`);
    const buf = Buffer.alloc(len);
    if (readSync(fd, buf, 0, len, 8) !== len) throw new Error(`dd2: ${path}: truncated safetensors header`);
    let header: { __metadata__?: Record<string, string> };
    try { header = JSON.parse(buf.toString('utf8')); } catch { throw new Error(`dd2: ${path} is not a safetensors file (header is not JSON)`); }
    const text = header.__metadata__?.[META_KEY];
    if (text === undefined) throw new Error(`dd2: ${path} is not a dd2 checkpoint (no '${META_KEY}' metadata)`);
    const meta = JSON.parse(text) as CheckpointMeta;
    if (typeof meta?.kind !== 'string') throw new Error(`dd2: ${path}: '${META_KEY}' metadata has no 'kind'`);
    return meta;
  } finally {
    closeSync(fd);
  }
}

/** The samplers of a checkpoint; the caller disposes them. */
export function openSamplers(path: string, o: SamplerOptions): { samplers: ImageSampler[]; meta: CheckpointMeta } {
  const meta = readCheckpointMeta(path);
  const f = factories.get(meta.kind);
  if (!f) {
    throw new Error(`dd2: --model: ${path} holds a '${meta.kind}' checkpoint; images can be drawn from ` +
      `${samplerKinds().map((k) => `'${k}'`).join(', ')} checkpoints`);
  }
  const samplers = f(path, meta, o);
  if (!samplers.length) throw new Error(`dd2: --model: ${path}: the '${meta.kind}' factory returned no sampler`);
  return { samplers, meta };
}

registerSamplerFactory('gpt', arSamplerFactory);
registerSamplerFactory('ar-diffusion', dd2SamplerFactory);

/**
 * The dataset a checkpoint's images come from, as recorded by `dd2 train tokenizer` in its tokenizer's meta
 * (options.dataset), or in the checkpoint's own options; null when neither records one or the file is gone.
 */
export function datasetOfCheckpoint(meta: CheckpointMeta, tokenizer?: string): string | null {
  const own = (meta.options as { dataset?: unknown } | undefined)?.dataset;
  const tok = tokenizer ?? meta.tokenizer;
  if (tok && existsSync(tok)) {
    try {
      const d = (readCheckpointMeta(tok).options as { dataset?: unknown } | undefined)?.dataset;
      if (typeof d === 'string') return d;
    } catch { /* not a readable tokenizer: fall through */ }
  }
  return typeof own === 'string' ? own : null;
}
