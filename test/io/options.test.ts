// Shared CLI helpers (lib/cli/options.ts): the common options and their defaults, option parsers whose
// errors are UsageErrors (exit code 2, naming the option and the expected form; not CommanderErrors, so
// lib/cli/index.ts prints them), the summary output with and without --json, and openRunDir's rules.
import t, { type Test } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import {
  addCommonOptions, emitSummary, formatSummary, openRunDir, parseChoiceArg, parseFloatArg, parseIntArg, parseIntListArg,
  UsageError, useDevice, type CommonOptions,
} from '../../lib/cli/options.js';
import { native } from '../../lib/tensor/native.js';
import { getDefaultDevice } from '../../lib/tensor/create.js';

async function parse(args: string[], out?: string): Promise<CommonOptions> {
  let got: CommonOptions | undefined;
  const program = new Command('dd2').exitOverride();
  const cmd = addCommonOptions(new Command('train'), { out }).exitOverride().action((o: CommonOptions) => { got = o; });
  program.addCommand(cmd);
  await program.parseAsync(['node', 'dd2', 'train', ...args]);
  return got!;
}

async function usage(t: Test, args: string[], re: RegExp): Promise<void> {
  const e = await parse(args).then(() => null, (err: unknown) => err);
  t.ok(e instanceof UsageError, `${args.join(' ')}: a UsageError`);
  t.notOk(e instanceof CommanderError, 'not a CommanderError (index.ts prints its message)');
  t.equal((e as UsageError).exitCode, 2, 'exit code 2');
  t.match((e as Error).message, re, `message: ${(e as Error).message}`);
}

t.test('common options', async (t) => {
  t.same(await parse([]), { device: 'cpu', seed: 0, json: false, resume: false }, 'defaults (no --out unless the command gives one)');
  t.same(await parse([], 'runs/x'), { device: 'cpu', seed: 0, out: 'runs/x', json: false, resume: false }, 'command default for --out');
  t.same(await parse(['--device', 'cuda', '--seed', '42', '--out', 'o', '--json', '--resume']),
    { device: 'cuda', seed: 42, out: 'o', json: true, resume: true }, 'all given');
  await usage(t, ['--seed', 'abc'], /^--seed: expected an integer >= 0, got 'abc' \(see --help\)$/);
  await usage(t, ['--seed', '-1'], /--seed: expected an integer >= 0, got '-1'/);
  await usage(t, ['--seed', '1.5'], /--seed: expected an integer >= 0/);
  await usage(t, ['--device', 'gpu'], /^--device: expected one of cpu, cuda, got 'gpu'/);
  const help = addCommonOptions(new Command('x')).helpInformation();
  t.match(help, /--device <cpu\|cuda>\s+where to compute \(default: "cpu"\)/, 'help shows the device default');
  t.match(help, /--seed <n>\s+random seed/, 'help lists --seed');
});

t.test('parsers', async (t) => {
  const i = parseIntArg('--steps', { min: 1, max: 100 });
  t.equal(i('7'), 7);
  t.equal(i(' +12 '), 12);
  for (const bad of ['0', '101', '1e2', '', '0x10', '3.0']) t.throws(() => i(bad), /^--steps: expected an integer in \[1, 100\], got/, `int '${bad}'`);
  const f = parseFloatArg('--lr', { above: 0, max: 1 });
  t.same(['3e-4', '0.5', '1', '.25', '1E-2'].map(f), [3e-4, 0.5, 1, 0.25, 0.01]);
  for (const bad of ['0', '-1', '2', 'nan', 'inf', '', '1e', 'abc']) t.throws(() => f(bad), /^--lr: expected a number > 0 and <= 1, got/, `float '${bad}'`);
  t.equal(parseFloatArg('--cfg')('-2.5'), -2.5, 'no bounds');
  const c = parseChoiceArg('--dataset', ['mnist', 'fashion-mnist'] as const);
  t.equal(c('mnist'), 'mnist');
  t.throws(() => c('cifar'), /--dataset: expected one of mnist, fashion-mnist, got 'cifar'/);
  const l = parseIntListArg('--grid', { length: 2, min: 1 });
  t.same(l('7,7'), [7, 7]);
  t.same(l(' 14 , 7 '), [14, 7]);
  for (const bad of ['7', '7,7,7', '7,', 'a,b', '0,7']) t.throws(() => l(bad), /^--grid: expected 2 comma-separated integers/, `list '${bad}'`);
});

t.test('summary output', async (t) => {
  const obj = { psnr: 22.123456789, codesInUse: 0.93, steps: 1000, checkpoint: 'runs/vq/vq.safetensors', grid: [7, 7], skip: undefined };
  t.equal(formatSummary(obj), 'psnr:       22.1235\ncodesInUse: 0.93\nsteps:      1000\ncheckpoint: runs/vq/vq.safetensors\ngrid:       [7,7]');
  const writes: string[] = [];
  const orig = process.stdout.write;
  process.stdout.write = ((s: string) => { writes.push(s); return true; }) as typeof process.stdout.write;
  try {
    emitSummary(true, obj);
    emitSummary(false, { a: 1 });
  } finally {
    process.stdout.write = orig;
  }
  t.same(JSON.parse(writes[0]), { psnr: 22.123456789, codesInUse: 0.93, steps: 1000, checkpoint: 'runs/vq/vq.safetensors', grid: [7, 7] },
    '--json: one JSON line on stdout');
  t.ok(writes[0].endsWith('}\n') && !writes[0].slice(0, -1).includes('\n'), 'a single line');
  t.equal(writes[1], 'a: 1\n', 'human: key: value lines');
});

t.test('openRunDir', async (t) => {
  const root = t.testdir();
  const dir = join(root, 'run');
  t.throws(() => openRunDir({ out: undefined, resume: false }, {}), UsageError, '--out required');
  t.throws(() => openRunDir({ out: dir, resume: true }, {}), /--resume: .* holds no run to resume/, 'nothing to resume');
  const rd = openRunDir({ out: dir, resume: false }, { a: 1 });
  t.same(rd.config, { a: 1 }, 'new run');
  t.same(openRunDir({ out: dir, resume: false }, { a: 2 }).config, { a: 2 }, 'a run without checkpoints may be restarted');
  writeFileSync(join(dir, 'ar-latest.json'), '{}');
  t.throws(() => openRunDir({ out: dir, resume: false }, {}), /already holds a run with checkpoints; pass --resume/, 'no silent overwrite');
  t.same(openRunDir({ out: dir, resume: true }, { ignored: true }).config, { a: 2 }, '--resume opens the existing run and its config');
  mkdirSync(join(root, 'other'));
  t.same(openRunDir({ out: join(root, 'other'), resume: false }, {}).config, {}, 'an existing empty folder is fine');
});

t.test('useDevice', async (t) => {
  t.equal(useDevice('cpu'), 'cpu');
  t.equal(getDefaultDevice(), 'cpu');
  const c = native.build_info().cuda;
  if (c.compiled && c.devices > 0) {
    t.equal(useDevice('cuda'), 'cuda');
    useDevice('cpu');
  } else {
    t.throws(() => useDevice('cuda'), { message: /--device cuda: .*use --device cpu/, exitCode: 1 }, 'no CUDA: runtime error, exit 1');
  }
});
