// Training the AR teacher (lib/train/ar.ts) on a synthetic token cache: the test NLL falls well below the
// unigram baseline; a run stopped at a checkpoint and resumed equals the uninterrupted run bit for bit; and
// the CLI end to end: `dd2 train ar` then `dd2 sample` with a small VQ tokenizer writes grid.png and
// samples.npz, byte-identical for the same seed. Synthetic task (K = 4 classes, V = 16, 4x4 grid):
// t_0 = 4c + u_0 and t_j = (t_{j-1} + c + u_j) mod V with fair coins u_j, so the unigram entropy is
// about ln 16 = 2.77 nats while the best model needs ln 2 = 0.69 nats per token.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { writeSafetensors } from '../../lib/io/safetensors.js';
import { loadModelFile, RunDir, saveModel } from '../../lib/io/checkpoint.js';
import { readNpz } from '../../lib/io/npz.js';
import { readPng } from '../../lib/io/png.js';
import { VQModel, defaultVQConfig } from '../../lib/models/vq.js';
import { defaultTrainArOptions, readTokenCache, trainAR, unigramBaseline, type TrainArOptions } from '../../lib/train/ar.js';
import { makeTrainArCommand } from '../../lib/cli/commands/train-ar.js';
import { makeSampleCommand } from '../../lib/cli/commands/sample.js';
import { Rng } from '../harness/compare.js';

const base = memory();
const V = 16, K = 4, G = 4, N = G * G;
const dir = mkdtempSync(join(tmpdir(), 'dd2-ar-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function writeCache(path: string, n: number, seed: number, split: string, tokenizer?: string): void {
  const rng = new Rng(seed);
  const tokens = new Int32Array(n * N), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rng.next() * K);
    labels[i] = c;
    let v = 4 * c + (rng.next() < 0.5 ? 1 : 0);
    for (let j = 0; j < N; j++) {
      if (j > 0) v = (v + c + (rng.next() < 0.5 ? 1 : 0)) % V;
      tokens[i * N + j] = v;
    }
  }
  writeSafetensors(path, new Map([
    ['tokens', { dtype: 'I32', shape: [n, N], data: tokens }], ['labels', { dtype: 'I32', shape: [n], data: labels }],
  ]), { __dd2__: JSON.stringify({ kind: 'tokens', tokenizer, dataset: 'synthetic', split, grid: [G, G], codebookSize: V, numClasses: K }) });
}

const trainPath = join(dir, 'toy-train.safetensors');
writeCache(trainPath, 768, 1, 'train');
writeCache(join(dir, 'toy-test.safetensors'), 192, 2, 'test');

const opts = (over: Partial<TrainArOptions> = {}): TrainArOptions => ({
  ...defaultTrainArOptions, tokens: trainPath, size: 'tiny', model: { dim: 32, nLayer: 2, nHead: 2 }, steps: 120, batchSize: 32,
  lr: 3e-3, warmup: 10, minLr: 3e-4, emaDecay: 0.99, ckptEvery: 50, logEvery: 10, evalEvery: 60, evalLimit: 64, evalBatch: 64, ...over,
});

t.test('a tiny run lowers the test NLL far below the unigram baseline', async (t) => {
  const c = readTokenCache(trainPath);
  t.same([c.n, c.seqLen, c.codebookSize, c.numClasses, c.grid], [768, N, V, K, [G, G]], 'cache read with its metadata');
  const run = RunDir.create(join(dir, 'run1'), { command: 'train ar', options: opts() });
  const r = trainAR(run, opts(), { json: true });
  const base = unigramBaseline(c, readTokenCache(join(dir, 'toy-test.safetensors')));
  t.comment(`${r.step} steps in ${r.seconds.toFixed(1)} s, ${r.params} parameters: test NLL ${r.testNll.toFixed(3)} ` +
    `(eval subset: live ${r.evalNllLive.toFixed(3)}, EMA ${r.evalNllEma.toFixed(3)}), unigram ${r.unigramTestCrossEntropy.toFixed(3)} ` +
    `(train entropy ${r.unigramEntropy.toFixed(3)}), optimum ln 2 = 0.693, train loss ${r.trainLoss.toFixed(3)}`);
  t.equal(r.unigramTestCrossEntropy, base.testCrossEntropy, 'baseline reported');
  t.ok(base.testCrossEntropy > 2.6, `unigram baseline near ln 16 (${base.testCrossEntropy.toFixed(3)})`);
  // Measured: test NLL 0.884 after 120 steps (1.4-3 s); the bound is half the baseline (1.37).
  t.ok(r.testNll < 0.5 * base.testCrossEntropy, `test NLL ${r.testNll.toFixed(3)} < half the unigram baseline`);
  t.ok(r.testNll > 0.69 - 0.02, 'not below the optimum ln 2 (sanity of the task)');
  t.equal(r.finished, true);
  const saved = loadModelFile(r.modelPath);
  t.equal(saved.meta.kind, 'gpt', 'gpt.safetensors has meta kind gpt');
  t.equal(saved.meta.step, 120, 'and the step');
  const log = run.readLog();
  t.ok(log.some((l) => typeof l.evalNll === 'number'), 'periodic eval NLL in log.jsonl');
  t.ok(log.filter((l) => typeof l.loss === 'number').length >= 12, 'a loss line every 10 steps');
});

t.test('resume from a checkpoint equals the uninterrupted run, bit for bit', async (t) => {
  const o = opts({ steps: 40, ckptEvery: 20, evalEvery: 0, model: { dim: 32, nLayer: 2, nHead: 2, tokenDropoutP: 0.1 } });
  const full = trainAR(RunDir.create(join(dir, 'full'), {}), o, { json: true });
  const part = trainAR(RunDir.create(join(dir, 'part'), {}), o, { json: true, stopAfter: 20 });
  t.equal(part.finished, false, 'stopped at step 20');
  t.equal(part.step, 20);
  const resumed = trainAR(RunDir.open(join(dir, 'part')), o, { json: true });
  t.equal(resumed.step, 40, 'resumed to step 40');
  const a = loadModelFile(full.modelPath).state, b = loadModelFile(resumed.modelPath).state;
  let same = a.size === b.size;
  for (const [k, v] of a) if (!b.has(k) || !Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer))) same = false;
  t.ok(same, 'final parameters identical');
  t.equal(resumed.testNll, full.testNll, `same test NLL ${full.testNll.toFixed(4)}`);
  const ea = loadModelFile(join(dir, 'full', 'ar-ema.safetensors')).state, eb = loadModelFile(join(dir, 'part', 'ar-ema.safetensors')).state;
  t.ok([...ea].every(([k, v]) => Buffer.from(v.buffer).equals(Buffer.from(eb.get(k)!.buffer))), 'EMA identical');
});

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

t.test('CLI: dd2 train ar, then dd2 sample twice with one seed', async (t) => {
  // A small untrained VQ tokenizer for 8x8 images with a 4x4 grid of 16 codes (decoding only).
  const vqPath = join(dir, 'vq.safetensors');
  const vq = tidy(() => new VQModel({ ...defaultVQConfig, imageSize: 8, downsample: 2, channels: 8, channelMult: [1, 1],
    zChannels: 8, codebookSize: V, codeDim: 4, groups: 4 }, 3));
  saveModel(vqPath, vq, { kind: 'vq', config: vq.cfg, step: 0 });
  vq.dispose();
  const tok = join(dir, 'cli-train.safetensors');
  writeCache(tok, 256, 5, 'train', vqPath);
  const out = join(dir, 'cli-run');
  const summary = JSON.parse(await cli(makeTrainArCommand(), ['--tokens', tok, '--dim', '32', '--layers', '2', '--heads', '2',
    '--steps', '30', '--batch-size', '32', '--out', out, '--json']));
  t.equal(summary.steps, 30, 'trained 30 steps');
  t.ok(summary.testNll < summary.unigramTestCrossEntropy, `test NLL ${summary.testNll.toFixed(3)} < unigram ${summary.unigramTestCrossEntropy.toFixed(3)}`);
  t.equal(summary.tokenizer, vqPath, 'tokenizer recorded from the cache');
  t.equal(summary.bitsPerDim, (summary.testNll * N) / Math.LN2 / 64, 'bits/dim over 8x8x1 pixels');
  const sample = async (name: string): Promise<string> => {
    const o = join(dir, name);
    await cli(makeSampleCommand(), ['--model', summary.model, '--class', '1,3', '--cfg', '2', '--n', '6', '--batch-size', '4',
      '--seed', '7', '--top-k', '8', '--out', o, '--per-image', '--json']);
    return o;
  };
  const [s1, s2] = [await sample('s1'), await sample('s2')];
  for (const f of ['grid.png', 'samples.npz', '00005-class3.png']) {
    t.ok(readFileSync(join(s1, f)).equals(readFileSync(join(s2, f))), `${f}: same bytes for the same seed`);
  }
  const npz = readNpz(join(s1, 'samples.npz'));
  t.same([npz.tokens.dtype, npz.tokens.shape, npz.labels.dtype, [...npz.labels.data], npz.images.dtype, npz.images.shape],
    ['int32', [6, N], 'int32', [1, 3, 1, 3, 1, 3], 'uint8', [6, 8, 8, 1]], 'samples.npz: tokens, labels, images NHWC');
  const grid = readPng(join(s1, 'grid.png'), 1);
  t.same([grid.height, grid.width], [2 * 10 + 2, 3 * 10 + 2], 'grid of 2 rows of 3 images with 2-pixel borders');
  await t.rejects(cli(makeTrainArCommand(), ['--tokens', tok, '--steps', '5', '--out', out]), /--resume/, 'refuses to overwrite a run');

  // --resume takes the options stored in run.json (here: a run stopped at step 10 of 20).
  const stored = opts({ tokens: tok, steps: 20, ckptEvery: 10, evalEvery: 0 });
  const cut = join(dir, 'cli-cut');
  trainAR(RunDir.create(cut, { command: 'train ar', options: stored }), stored, { json: true, stopAfter: 10 });
  const resumed = JSON.parse(await cli(makeTrainArCommand(), ['--out', cut, '--resume', '--steps', '999', '--json']));
  t.equal(resumed.steps, 20, 'resumed with the stored 20 steps (command-line --steps ignored)');
  await t.rejects(cli(makeTrainArCommand(), ['--out', join(dir, 'nothing'), '--resume']), /no run to resume/, '--resume needs a run');
});

t.test('no leaks', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, base.cpu.bytes, 'native bytes back to baseline');
});
