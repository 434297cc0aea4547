// `dd2 distill` end to end on a tiny random teacher (GPT with a 4x4 grid of 16 codes and an untrained VQ
// tokenizer): all stages write their files into the run folder; a second call skips the finished stages; a
// run stopped inside stage 1 continues with --resume (stored options) and matches an uninterrupted run; the
// written generator samples through `dd2 sample --generator`; usage errors name the option.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { writeSafetensors } from '../../lib/io/safetensors.js';
import { loadModelFile, RunDir, saveModel } from '../../lib/io/checkpoint.js';
import { VQModel, defaultVQConfig } from '../../lib/models/vq.js';
import { GPT, resolveGPTConfig } from '../../lib/models/gpt.js';
import { makeDistillCommand } from '../../lib/cli/commands/distill.js';
import { makeSampleCommand } from '../../lib/cli/commands/sample.js';
import { defaultDistillOptions, runDistill, type DistillOptions } from '../../lib/distill/pipeline.js';
import { Rng } from '../harness/compare.js';

const base = memory();
const V = 16, K = 3, G = 4, N = G * G;
const dir = mkdtempSync(join(tmpdir(), 'dd2-distill-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const vqPath = join(dir, 'vq.safetensors'), tokPath = join(dir, 'toy-train.safetensors'), gptPath = join(dir, 'gpt.safetensors');
{
  const vq = tidy(() => new VQModel({ ...defaultVQConfig, imageSize: 8, downsample: 2, channels: 8, channelMult: [1, 1],
    zChannels: 8, codebookSize: V, codeDim: 4, groups: 4 }, 3));
  saveModel(vqPath, vq, { kind: 'vq', config: vq.cfg, step: 0 });
  vq.dispose();
  const rng = new Rng(1), n = 96;
  const tokens = Int32Array.from({ length: n * N }, () => Math.floor(rng.next() * V)), labels = Int32Array.from({ length: n }, (_, i) => i % K);
  writeSafetensors(tokPath, new Map([
    ['tokens', { dtype: 'I32', shape: [n, N], data: tokens }], ['labels', { dtype: 'I32', shape: [n], data: labels }],
  ]), { __dd2__: JSON.stringify({ kind: 'tokens', tokenizer: vqPath, dataset: 'synthetic', split: 'train', grid: [G, G], codebookSize: V, numClasses: K }) });
  const cfg = resolveGPTConfig({ vocabSize: V, numClasses: K, gridH: G, gridW: G, dim: 32, nLayer: 1, nHead: 2, classDropoutProb: 0.1,
    tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0 });
  const gpt = new GPT(cfg, new Generator(2));
  saveModel(gptPath, gpt, { kind: 'gpt', config: cfg, step: 10, tokenizer: vqPath, options: { tokens: tokPath } });
  gpt.dispose();
}

const small = ['--fit-steps', '5', '--adapt-steps', '3', '--adapt-batch', '8', '--input-hidden', '16', '--head-width', '32',
  '--head-depth', '1', '--head-freq', '16', '--pool-size', '24', '--pool-batch', '12', '--gts-head-steps', '2', '--gts-steps', '2',
  '--gts-batch', '8', '--reg-steps', '4', '--reg-batch', '8', '--csd-steps', '3', '--csd-batch', '8', '--csd-reg-batch', '4',
  '--guidance-steps', '1', '--top-k', '5', '--ckpt-every', '2'];

/** Runs a command factory's command with argv, capturing stdout. */
async function cli(cmd: Command, args: string[]): Promise<string> {
  const program = new Command('dd2').exitOverride().addCommand(cmd);
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'dd2', cmd.name(), ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

t.test('all stages, then a second call skips them; the generator samples', async (t) => {
  const out = join(dir, 'run');
  const s = JSON.parse(await cli(makeDistillCommand(), ['--teacher', gptPath, ...small, '--out', out, '--json']));
  t.equal(s.finished, true);
  t.equal(s.ran, 'adapt,gts,reg,csd', 'ran the four stages');
  for (const f of ['teacher-continuous', 'ar-diffusion', 'marginals', 'warm-start', 'generator', 'guidance']) {
    t.ok(existsSync(join(out, `${f}.safetensors`)), `${f}.safetensors written`);
  }
  t.ok(Number.isFinite(s.adaptNllGPT) && Number.isFinite(s.adaptNllTuned) && Number.isFinite(s.gtsLoss) && Number.isFinite(s.regLoss) &&
    Number.isFinite(s.csdCsdLoss), `figures reported (NLL GPT ${s.adaptNllGPT}, adapted ${s.adaptNllTuned}, GTS ${s.gtsLoss}, ` +
    `regression ${s.regLoss}, CSD ${s.csdCsdLoss})`);
  const meta = loadModelFile(join(out, 'generator.safetensors')).meta as { kind: string; role?: string; tokenizer?: string; step: number };
  t.same([meta.kind, meta.role, meta.tokenizer, meta.step], ['ar-diffusion', 'generator', vqPath, 3], 'generator meta');
  t.ok(existsSync(join(out, 'adapt', 'log.jsonl')) && existsSync(join(out, 'gts', 'pool.safetensors')) && existsSync(join(out, 'csd', 'csd-latest.json')),
    'one subfolder per stage with its log, pool and checkpoints');
  const again = JSON.parse(await cli(makeDistillCommand(), ['--teacher', gptPath, ...small, '--out', out, '--json']));
  t.same([again.ran, again.skipped], ['none', 'adapt,gts,reg,csd'], 'finished stages are skipped');
  const so = join(dir, 'samples');
  await cli(makeSampleCommand(), ['--generator', join(out, 'generator.safetensors'), '--n', '4', '--out', so, '--json']);
  t.ok(existsSync(join(so, 'samples.npz')) && existsSync(join(so, 'grid.png')), 'dd2 sample --generator writes samples');
});

t.test('--resume continues a stage stopped at a checkpoint, with the stored options', async (t) => {
  const parse = async (args: string[]): Promise<DistillOptions> => {
    const o = join(dir, 'probe');
    rmSync(o, { recursive: true, force: true });
    await cli(makeDistillCommand(), [...args, '--stage', 'adapt', '--out', o, '--json']);
    return (RunDir.open(o).config as { options: DistillOptions }).options;
  };
  const opts = { ...(await parse(['--teacher', gptPath, ...small])), stage: 'all' as const };
  t.equal(opts.csd.steps, 3, 'options stored in run.json');
  const full = join(dir, 'full'), cut = join(dir, 'cut');
  runDistill(RunDir.create(full, { command: 'distill', options: opts }), opts, { json: true });
  const part = runDistill(RunDir.create(cut, { command: 'distill', options: opts }), opts, { json: true, stopStage: 'gts', stopAfter: 3 });
  t.same([part.finished, part.ran], [false, ['adapt', 'gts']], 'stopped inside stage 1 (after the adapt stage and 3 GTS steps)');
  await t.rejects(cli(makeDistillCommand(), ['--teacher', gptPath, ...small, '--out', cut]), /--resume/, 'an unfinished stage needs --resume');
  const r = JSON.parse(await cli(makeDistillCommand(), ['--out', cut, '--resume', '--csd-steps', '999', '--json']));
  t.same([r.finished, r.ran, r.skipped], [true, 'gts,reg,csd', 'adapt'], 'resumed stage 1, then the warm start and stage 2');
  for (const f of ['ar-diffusion', 'warm-start', 'generator', 'guidance']) {
    const a = loadModelFile(join(full, `${f}.safetensors`)).state, b = loadModelFile(join(cut, `${f}.safetensors`)).state;
    t.ok([...a].every(([k, v]) => Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer))), `${f}: identical to the uninterrupted run`);
  }
  t.ok(readFileSync(join(cut, 'log.jsonl'), 'utf8').includes('"stage done"'), 'top-level log.jsonl records the stages');
  // the warm start stopped after 2 of its 4 steps, and stage 2 after 1 of its 3 updates
  for (const [stage, stop] of [['reg', 2], ['csd', 1]] as const) {
    const c3 = join(dir, `cut-${stage}`);
    const p3 = runDistill(RunDir.create(c3, { command: 'distill', options: opts }), opts, { json: true, stopStage: stage, stopAfter: stop });
    t.equal(p3.finished, false, `stopped ${stage} after ${stop} steps`);
    runDistill(RunDir.open(c3), opts, { json: true });
    for (const f of ['warm-start', 'generator', 'guidance']) {
      const a = loadModelFile(join(full, `${f}.safetensors`)).state, b = loadModelFile(join(c3, `${f}.safetensors`)).state;
      t.ok([...a].every(([k, v]) => Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer))), `${f}: identical after resuming ${stage}`);
    }
  }
  // stage 0 stopped inside its fit phase (3 of 5 steps) and inside its fine-tuning phase (5 + 1 of 5 + 3)
  for (const stop of [3, 6]) {
    const c2 = join(dir, `cut-adapt-${stop}`);
    const p2 = runDistill(RunDir.create(c2, { command: 'distill', options: opts }), opts, { json: true, stopStage: 'adapt', stopAfter: stop });
    t.same([p2.finished, p2.ran], [false, ['adapt']], `stopped stage 0 after ${stop} steps`);
    runDistill(RunDir.open(c2), opts, { json: true });
    for (const f of ['teacher-continuous', 'generator']) {
      const a = loadModelFile(join(full, `${f}.safetensors`)).state, b = loadModelFile(join(c2, `${f}.safetensors`)).state;
      t.ok([...a].every(([k, v]) => Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer))), `${f}: identical after resuming stage 0 at ${stop}`);
    }
  }
});

t.test('--reg-steps 0 --csd-reg 0: stage 2 starts from the AR-diffusion model (the paper\'s initialisation)', async (t) => {
  const out = join(dir, 'paper-init');
  const s = JSON.parse(await cli(makeDistillCommand(), ['--teacher', gptPath, ...small, '--pool-flow-steps', '0', '--reg-steps', '0',
    '--csd-reg', '0', '--out', out, '--json']));
  t.same([s.finished, s.ran], [true, 'adapt,gts,csd'], 'no warm-start stage');
  t.notOk(existsSync(join(out, 'warm-start.safetensors')), 'no warm-start file');
  t.ok(readFileSync(join(out, 'log.jsonl'), 'utf8').includes('"from":"ar-diffusion"'), 'the log names the generator\'s start');
});

t.test('usage errors', async (t) => {
  await t.rejects(cli(makeDistillCommand(), ['--out', join(dir, 'x')]), /--teacher/, 'the teacher is required');
  await t.rejects(cli(makeDistillCommand(), ['--teacher', gptPath, '--stage', 'gts', '--out', join(dir, 'y'), '--json', ...small]),
    /teacher-continuous\.safetensors is missing: run --stage adapt/, 'stage 1 needs stage 0');
  await t.rejects(cli(makeDistillCommand(), ['--teacher', gptPath, '--stage', 'nope']), /--stage: expected one of all, adapt, gts, reg, csd/);
  // a categorical pool keeps no noise: the warm start says which option to change
  const noFlow = join(dir, 'no-flow');
  await t.rejects(cli(makeDistillCommand(), ['--teacher', gptPath, ...small, '--pool-flow-steps', '0', '--out', noFlow, '--json']),
    /drawn without the flow map.*--pool-flow-steps > 0, or pass --reg-steps 0 --csd-reg 0/, 'the warm start needs a flow-map pool');
  await t.rejects(cli(makeDistillCommand(), ['--teacher', gptPath, '--t-min', '0.9', '--t-max', '0.5']), /--t-min 0.9 must be below/);
});

t.test('defaults are complete', async (t) => {
  const d = defaultDistillOptions('x');
  t.same([d.csd.betas, d.csd.alpha, d.csd.tMin, d.csd.tMax, d.gts.draws, d.csd.lrStart, d.sampling.cfg], [[0.9, 0.95], 1, 0.02, 0.98, 4, 1e-6, 2],
    "the paper's settings where they apply");
});

t.test('no leaks', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'live tensors back to baseline');
});
