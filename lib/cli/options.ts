// Shared helpers for the command files: the common options (--device, --seed, --out, --json, --resume),
// option parsers that throw a UsageError naming the option and the expected form (exit code 2 through
// lib/cli/index.ts), the output helpers (summary on stdout, human messages on stderr) and opening the
// run folder for a fresh or resumed run. Library code never prints; commands print through these.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import type { Device } from '../tensor/dtype.js';
import { native } from '../tensor/native.js';
import { setDefaultDevice } from '../tensor/create.js';
import { RunDir } from '../io/checkpoint.js';

/** A wrong command line: index.ts prints "dd2: <message>" and exits with status 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parsed values of the common options. */
export interface CommonOptions { device: Device; seed: number; out?: string; json: boolean; resume: boolean }

const hint = ' (see --help)';

export interface IntRule { min?: number; max?: number }
export interface FloatRule { min?: number; max?: number; /** strict lower bound */ above?: number; /** strict upper bound */ below?: number }

/** Parser for an integer option: decimal digits only, within [min, max]. */
export function parseIntArg(option: string, rule: IntRule = {}): (value: string) => number {
  return (value: string): number => {
    const v = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
    const { min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = rule;
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      const range = rule.min !== undefined && rule.max !== undefined ? ` in [${min}, ${max}]`
        : rule.min !== undefined ? ` >= ${min}` : rule.max !== undefined ? ` <= ${max}` : '';
      throw new UsageError(`${option}: expected an integer${range}, got '${value}'${hint}`);
    }
    return v;
  };
}

/** Parser for a number option (decimal or exponent notation), within the rule's bounds. */
export function parseFloatArg(option: string, rule: FloatRule = {}): (value: string) => number {
  return (value: string): number => {
    const ok = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(value.trim());
    const v = ok ? Number(value) : NaN;
    const parts: string[] = [];
    if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
    if (rule.above !== undefined) parts.push(`> ${rule.above}`);
    if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
    if (rule.below !== undefined) parts.push(`< ${rule.below}`);
    const fails = !Number.isFinite(v) || (rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max) ||
      (rule.above !== undefined && v <= rule.above) || (rule.below !== undefined && v >= rule.below);
    if (fails) throw new UsageError(`${option}: expected a number${parts.length ? ' ' + parts.join(' and ') : ''}, got '${value}'${hint}`);
    return v;
  };
}

/** Parser for an option with a fixed set of values. */
export function parseChoiceArg<T extends string>(option: string, choices: readonly T[]): (value: string) => T {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new UsageError(`${option}: expected one of ${choices.join(', ')}, got '${value}'${hint}`);
    }
    return value as T;
  };
}

/** Parser for a comma-separated list of integers (e.g. "--grid 7,7"), optionally of a fixed length. */
export function parseIntListArg(option: string, rule: IntRule & { length?: number } = {}): (value: string) => number[] {
  const one = parseIntArg(option, rule);
  return (value: string): number[] => {
    const parts = value.split(',').map((s) => s.trim());
    const form = rule.length ? `${rule.length} comma-separated integers` : 'comma-separated integers';
    if (parts.some((p) => !p) || (rule.length !== undefined && parts.length !== rule.length)) {
      throw new UsageError(`${option}: expected ${form}, got '${value}'${hint}`);
    }
    try {
      return parts.map(one);
    } catch {
      throw new UsageError(`${option}: expected ${form}${rule.min !== undefined ? ` (each >= ${rule.min})` : ''}, got '${value}'${hint}`);
    }
  };
}

/** Adds --device, --seed, --out, --json and --resume to a command (defaults: cpu, 0, defaults.out). */
export function addCommonOptions(cmd: Command, defaults: { out?: string } = {}): Command {
  cmd.addOption(new Option('--device <cpu|cuda>', 'where to compute').default('cpu')
    .argParser(parseChoiceArg('--device', ['cpu', 'cuda'] as const)));
  cmd.addOption(new Option('--seed <n>', 'random seed (integer >= 0)').default(0)
    .argParser(parseIntArg('--seed', { min: 0 })));
  cmd.addOption(new Option('--out <dir>', 'output folder').default(defaults.out));
  cmd.addOption(new Option('--json', 'print a machine-readable JSON summary on stdout (messages go to stderr)').default(false));
  cmd.addOption(new Option('--resume', 'continue the run in --out from its latest checkpoint').default(false));
  return cmd;
}

/** Makes `device` the default for new tensors, failing (exit 1) if CUDA is asked for but not usable. */
export function useDevice(device: Device): Device {
  if (device === 'cuda') {
    const c = native.build_info().cuda;
    if (!c.compiled || c.devices < 1) {
      const why = !c.compiled ? 'this build of dd2 has no CUDA support' : `no CUDA device found${c.error ? ` (${c.error})` : ''}`;
      throw Object.assign(new Error(`--device cuda: ${why}; use --device cpu`), { exitCode: 1 });
    }
  }
  setDefaultDevice(device);
  return device;
}

/** A human-readable message: always stderr, so stdout stays clean for --json. */
export function info(message: string): void {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
}

/** "key: value" lines for a summary object (nested values as compact JSON). */
export function formatSummary(obj: Record<string, unknown>): string {
  const fmt = (v: unknown): string => (typeof v === 'number' && !Number.isInteger(v) ? String(Number(v.toPrecision(6)))
    : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  const w = Math.max(0, ...Object.keys(obj).map((k) => k.length));
  return Object.entries(obj).filter(([, v]) => v !== undefined).map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${fmt(v)}`).join('\n');
}

/** The end-of-command summary: with json, one JSON line on stdout; otherwise "key: value" lines on stdout. */
export function emitSummary(json: boolean, obj: Record<string, unknown>): void {
  process.stdout.write((json ? JSON.stringify(obj) : formatSummary(obj)) + '\n');
}

/**
 * The run folder for a command: with --resume, the existing run in --out (a UsageError if there is none);
 * otherwise a new one, refusing to overwrite a folder that already holds checkpoints.
 */
export function openRunDir(opts: Pick<CommonOptions, 'out' | 'resume'>, config: unknown): RunDir {
  if (!opts.out) throw new UsageError(`--out: an output folder is required${hint}`);
  const hasRun = existsSync(join(opts.out, 'run.json'));
  if (opts.resume) {
    if (!hasRun) throw new UsageError(`--resume: ${opts.out} holds no run to resume (no run.json)`);
    return RunDir.open(opts.out);
  }
  if (hasRun && readdirSync(opts.out).some((f) => f.endsWith('-latest.json'))) {
    throw new UsageError(`--out: ${opts.out} already holds a run with checkpoints; pass --resume to continue it, ` +
      'or choose another --out');
  }
  return RunDir.create(opts.out, config);
}
