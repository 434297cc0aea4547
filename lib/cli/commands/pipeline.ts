// `dd2 pipeline`: the whole DD2 pipeline on a built-in dataset, one command: VQ tokenizer -> token caches ->
// AR teacher -> distillation (adapt, GTS, CSD) -> sample grids (teacher, one-step, few-step) -> evaluation
// table (teacher vs one-step: FID, IS, precision/recall, class accuracy, latency, speed-up). Each step runs
// as its own `dd2 <command>` child process (the same commands a user would type, printed before each
// runs), so every step keeps its own run folder, log and checkpoints; a step whose final output exists
// is skipped, so an interrupted pipeline continues where it stopped when run again with the same --out.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { emitSummary, info, parseChoiceArg, parseIntArg, UsageError } from '../options.js';

/** Step sizes of a preset; `quick` keeps the whole pipeline near 10 minutes on 2 CPU cores. */
export interface PipelinePreset {
  tokenizerSteps: number;
  arSteps: number;
  /** extra `dd2 distill` options (stage lengths) */
  distill: string[];
  /** training images encoded for the teacher and stage 0 (0 = all) */
  encodeLimit: number;
  /** images per sampler in the evaluation */
  evalN: number;
  fewStep: number;
}

export const PIPELINE_PRESETS: Readonly<Record<'quick' | 'full', PipelinePreset>> = {
  quick: {
    tokenizerSteps: 300, arSteps: 500, encodeLimit: 20000, evalN: 1000, fewStep: 4,
    distill: ['--fit-steps', '500', '--adapt-steps', '100', '--pool-size', '1024', '--gts-head-steps', '50', '--gts-steps', '150',
      '--reg-steps', '600', '--csd-steps', '60'],
  },
  full: { tokenizerSteps: 600, arSteps: 1000, encodeLimit: 0, distill: [], evalN: 5000, fewStep: 4 },
};

interface RawOptions { dataset: 'mnist' | 'fashion-mnist'; quick: boolean; out?: string; device: 'cpu' | 'cuda'; seed: number; json: boolean }

interface StepRecord { name: string; command: string; seconds: number; skipped: boolean; summary?: unknown }

const here = dirname(fileURLToPath(import.meta.url));

/** bin/dd2.js of this installation (from lib/cli/commands or dist/lib/cli/commands). */
function binPath(): string {
  for (const up of ['../../../bin/dd2.js', '../../../../bin/dd2.js']) {
    const p = resolve(here, up);
    if (existsSync(p)) return p;
  }
  throw new Error('dd2 pipeline: cannot find bin/dd2.js next to this installation');
}

/** Runs `dd2 <args>` with stderr shown live; returns the parsed --json summary (last stdout line) if any. */
function runDd2(args: string[], opts: { json: boolean; passStdout?: boolean }): unknown {
  const shown = ['dd2', ...args].map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ');
  info(`\n$ ${shown}`);
  const r = spawnSync(process.execPath, [binPath(), ...args], {
    stdio: ['ignore', opts.passStdout ? 'inherit' : 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw Object.assign(new Error(`pipeline step failed (exit ${r.status ?? r.signal}): ${shown}`), { exitCode: r.status ?? 1 });
  }
  if (!opts.json || opts.passStdout) return undefined;
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last);
  } catch {
    return undefined;
  }
}

export function makePipelineCommand(): Command {
  const cmd = new Command('pipeline')
    .description('run the whole pipeline on a built-in dataset: tokenizer, teacher, DD2 distillation, sample grids and ' +
      'the teacher-vs-one-step evaluation table (each step is a dd2 command, printed before it runs; finished steps ' +
      'are skipped when run again with the same --out)')
    .addOption(new Option('--dataset <name>', 'mnist or fashion-mnist').default('mnist')
      .argParser(parseChoiceArg('--dataset', ['mnist', 'fashion-mnist'] as const)))
    .addOption(new Option('--quick', 'short stages (about 10-15 minutes on 2 CPU cores); numbers are rough').default(false))
    .addOption(new Option('--out <dir>', 'run folder for every step (default runs/pipeline-<dataset>[-quick])'))
    .addOption(new Option('--device <cpu|cuda>', 'where to compute').default('cpu')
      .argParser(parseChoiceArg('--device', ['cpu', 'cuda'] as const)))
    .addOption(new Option('--seed <n>', 'random seed (integer >= 0)').default(0).argParser(parseIntArg('--seed', { min: 0 })))
    .addOption(new Option('--json', 'print a machine-readable JSON summary on stdout (messages go to stderr)').default(false));
  cmd.action((raw: RawOptions) => {
    const preset = PIPELINE_PRESETS[raw.quick ? 'quick' : 'full'];
    const out = raw.out ?? `runs/pipeline-${raw.dataset}${raw.quick ? '-quick' : ''}`;
    if (existsSync(out) && !existsSync(join(out, 'pipeline.json')) && !existsSync(join(out, 'tokenizer'))) {
      throw new UsageError(`--out: ${out} exists and is not a dd2 pipeline folder; choose another --out`);
    }
    mkdirSync(out, { recursive: true });
    const common = ['--device', raw.device, '--seed', String(raw.seed)];
    const p = (...xs: string[]): string => join(out, ...xs);
    const steps: StepRecord[] = [];
    const t0 = Date.now();
    const step = (name: string, output: string, args: string[], o: { passStdout?: boolean } = {}): void => {
      const command = ['dd2', ...args].join(' ');
      if (existsSync(output)) {
        info(`pipeline: ${name}: ${output} exists, skipped`);
        steps.push({ name, command, seconds: 0, skipped: true });
        return;
      }
      const s = Date.now();
      const summary = runDd2(args, { json: !o.passStdout, passStdout: o.passStdout });
      steps.push({ name, command, seconds: (Date.now() - s) / 1000, skipped: false, summary });
      writeFileSync(p('pipeline.json'), JSON.stringify({ dataset: raw.dataset, quick: raw.quick, steps }, null, 2));
    };
    const vq = p('tokenizer', 'vq.safetensors');
    const gpt = p('teacher', 'gpt.safetensors');
    const tokTrain = p('tokens', `${raw.dataset}-train.safetensors`);
    const tokTest = p('tokens', `${raw.dataset}-test.safetensors`);
    const distill = p('distill');
    const generator = p('distill', 'generator.safetensors');

    step('tokenizer', vq, ['train', 'tokenizer', '--dataset', raw.dataset, '--steps', String(preset.tokenizerSteps),
      ...common, '--out', p('tokenizer'), '--json']);
    step('encode train', tokTrain, ['encode', '--tokenizer', vq, '--dataset', raw.dataset, '--split', 'train',
      ...(preset.encodeLimit ? ['--limit', String(preset.encodeLimit)] : []), '--device', raw.device, '--out', tokTrain, '--json']);
    step('encode test', tokTest, ['encode', '--tokenizer', vq, '--dataset', raw.dataset, '--split', 'test',
      '--device', raw.device, '--out', tokTest, '--json']);
    step('teacher', gpt, ['train', 'ar', '--tokens', tokTrain, '--test-tokens', tokTest, '--steps', String(preset.arSteps),
      ...common, '--out', p('teacher'), '--json']);
    step('distill', generator, ['distill', '--teacher', gpt, '--tokens', tokTrain, ...preset.distill, ...common,
      '--out', distill, '--json']);
    step('samples: teacher', p('samples', 'teacher', 'grid.png'), ['sample', '--model', gpt, '--n', '100', '--nrow', '10',
      ...common, '--out', p('samples', 'teacher'), '--json']);
    step('samples: one-step', p('samples', 'one-step', 'grid.png'), ['sample', '--generator', generator, '--n', '100',
      '--nrow', '10', ...common, '--out', p('samples', 'one-step'), '--json']);
    step(`samples: ${preset.fewStep}-step`, p('samples', 'few-step', 'grid.png'), ['sample', '--generator', generator,
      '--few-step', String(preset.fewStep), '--n', '100', '--nrow', '10', ...common, '--out', p('samples', 'few-step'), '--json']);
    step('evaluation', p('eval', 'eval.json'), ['eval', '--model', gpt, '--model', generator, '--dataset', raw.dataset,
      '--n', String(preset.evalN), ...common, '--out', p('eval')], { passStdout: !raw.json });

    const evalJson = existsSync(p('eval', 'eval.json')) ? JSON.parse(readFileSync(p('eval', 'eval.json'), 'utf8')) : undefined;
    const total = (Date.now() - t0) / 1000;
    writeFileSync(p('pipeline.json'), JSON.stringify({ dataset: raw.dataset, quick: raw.quick, seconds: total, steps,
      eval: evalJson }, null, 2));
    info(`\npipeline: done in ${(total / 60).toFixed(1)} min; run folder ${out} (grids under ${p('samples')}, table in ${p('eval')})`);
    if (raw.json) emitSummary(true, { out, seconds: total, steps: steps.map(({ summary: _s, ...r }) => r), eval: evalJson });
  });
  return cmd;
}
