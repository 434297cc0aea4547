// Training the VQ tokenizer (lib/train/tokenizer.ts) on a small MNIST subset with a tiny model: 30 steps
// lower the loss and write vq.safetensors, reconstructions.png and log.jsonl; a run stopped at a checkpoint
// and resumed equals the uninterrupted run bit for bit (dead-code restarts included); the token cache
// (lib/train/token-cache.ts) round-trips and is accepted by the AR trainer's reader; and the CLI commands
// `train tokenizer` and `encode` run end to end with --json.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { memory } from '../../lib/tensor/engine.js';
import { loadModelFile, RunDir } from '../../lib/io/checkpoint.js';
import { readPng } from '../../lib/io/png.js';
import { levelsFor, loadVQ } from '../../lib/models/vq.js';
import { defaultTrainTokenizerOptions, trainTokenizer, type TrainTokenizerOptions } from '../../lib/train/tokenizer.js';
import { encodeToCache, readTokenCacheFile } from '../../lib/train/token-cache.js';
import { readTokenCache } from '../../lib/train/ar.js';
import { makeTrainTokenizerCommand } from '../../lib/cli/commands/train-tokenizer.js';
import { makeEncodeCommand } from '../../lib/cli/commands/encode.js';

const base = memory();
const dir = mkdtempSync(join(tmpdir(), 'dd2-tok-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const quiet = { progressStream: Object.assign(new Writable({ write(_c, _e, cb): void { cb(); } }), { isTTY: false }) };

// A tiny model (widths 8/16/32, K = 64, D = 4) on the first 256 training and 64 test images.
const opts: TrainTokenizerOptions = {
  ...defaultTrainTokenizerOptions, model: { channels: 8, ...levelsFor(4), zChannels: 16, codebookSize: 64, codeDim: 4, groups: 4 },
  steps: 30, batchSize: 16, lr: 3e-3, warmup: 5, restartEvery: 5, ckptEvery: 10, logEvery: 5, trainLimit: 256, evalLimit: 64,
  evalBatch: 32, seed: 3,
};

function same(a: Map<string, Float32Array>, b: Map<string, Float32Array>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.has(k) && Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)));
}

t.test('30 steps on 256 MNIST images lower the loss and write the model, a grid and the log', async (t) => {
  const run = RunDir.create(join(dir, 'full'), { options: opts });
  const r = await trainTokenizer(run, opts, quiet);
  t.ok(r.finished && r.step === 30, 'ran 30 steps');
  // Measured (seed 3): loss 0.79 over steps 1-5, 0.18 over steps 26-30, 37 restarts, test PSNR 14.6 dB on
  // 64 images with all 64 codes in use (perplexity 41).
  t.ok(r.trainLoss < 0.5 * r.trainLossStart, `loss falls by more than half: ${r.trainLossStart.toFixed(3)} -> ${r.trainLoss.toFixed(3)}`);
  t.ok(r.restarts > 0, `dead codes were restarted (${r.restarts})`);
  const e = r.test!;
  t.ok(e.psnr > 12 && e.psnr < 40, `test PSNR ${e.psnr.toFixed(2)} dB is plausible for 30 steps`);
  t.ok(Math.abs(e.psnr - 10 * Math.log10(1 / e.mse)) < 1e-9, 'PSNR = 10 log10(1 / MSE)');
  t.ok(e.codesUsed > 0 && e.codesUsed <= 64 && e.codesUsedFraction === e.codesUsed / 64, `codes used ${e.codesUsed}/64`);
  t.ok(e.perplexity >= 1 && e.perplexity <= e.codesUsed, `perplexity ${e.perplexity.toFixed(1)} within [1, codes used]`);
  t.equal(e.images, 64, 'evaluated 64 test images');
  const vq = loadVQ(r.modelPath);
  t.same(vq.gridSize, [7, 7], 'the saved tokenizer has a 7x7 grid');
  t.equal(loadModelFile(r.modelPath).meta.kind, 'vq', "meta kind 'vq'");
  vq.dispose();
  const png = readPng(r.gridPath, 1);
  t.same([png.height, png.width], [8 * 30 + 2, 8 * 30 + 2], '8 rows (4 of originals, 4 of reconstructions) of 8 images, 28 px + 2 px borders');
  const log = run.readLog();
  t.same(log.filter((l) => typeof l.step === 'number' && l.loss !== undefined).map((l) => l.step), [5, 10, 15, 20, 25, 30], 'a log line every 5 steps');
  t.equal(log[log.length - 1].event, 'done', 'the log ends with the summary');
});

t.test('--resume continues bit for bit', async (t) => {
  const run = RunDir.create(join(dir, 'part'), { options: opts });
  const stopped = await trainTokenizer(run, opts, { ...quiet, stopAfter: 15 });
  t.notOk(stopped.finished, 'stopped at step 15');
  t.equal(run.latestStep('tokenizer'), 15, 'checkpointed at the stop');
  const resumed = await trainTokenizer(RunDir.open(join(dir, 'part')), opts, quiet);
  t.ok(resumed.finished && resumed.step === 30, 'resumed to step 30');
  const full = loadModelFile(join(dir, 'full', 'vq.safetensors')).state, part = loadModelFile(resumed.modelPath).state;
  t.ok(same(full, part), 'final parameters identical to the uninterrupted run');
  t.equal(resumed.restarts, (JSON.parse(readFileSync(join(dir, 'full', 'log.jsonl'), 'utf8').trim().split('\n').pop()!)).restarts,
    'same number of restarts');
  const optA = readFileSync(join(dir, 'full', 'tokenizer-optim-000030.safetensors'));
  const optB = readFileSync(join(dir, 'part', 'tokenizer-optim-000030.safetensors'));
  t.ok(optA.equals(optB), 'optimizer state identical');
});

t.test('token cache: encode a split, read it back, and the AR reader accepts it', async (t) => {
  const vqPath = join(dir, 'full', 'vq.safetensors'), out = join(dir, 'tokens', 'mnist-test.safetensors');
  const r = await encodeToCache({ tokenizer: vqPath, dataset: 'mnist', split: 'test', out, limit: 50, batchSize: 16 });
  t.equal(r.images, 50);
  const c = readTokenCacheFile(out);
  t.same([c.n, c.tokens.length, c.labels.length], [50, 50 * 49, 50], 'tokens (50, 49), labels (50)');
  t.same(c.meta, { kind: 'tokens', tokenizer: vqPath, dataset: 'mnist', split: 'test', grid: [7, 7], codebookSize: 64, numClasses: 10 },
    'metadata');
  const ar = readTokenCache(out);
  t.same([ar.n, ar.seqLen, ar.codebookSize, ar.numClasses, ar.tokenizer], [50, 49, 64, 10, vqPath], 'the AR trainer reads it');
  // the cached codes are what the tokenizer gives for those images
  const vq = loadVQ(vqPath);
  const { imageBatch, loadDataset } = await import('../../lib/data/dataset.js');
  const { noGrad, tidy } = await import('../../lib/tensor/engine.js');
  const ds = await loadDataset('mnist', 'test', { limit: 5 });
  const codes = noGrad(() => tidy(() => vq.encode(imageBatch(ds, Int32Array.from([0, 1, 2, 3, 4]))).idx.toInt32Array()));
  t.same(codes, c.tokens.subarray(0, 5 * 49), 'cache rows = encode() of the same images');
  t.same(Array.from(c.labels.subarray(0, 5)), Array.from(ds.labels!), 'labels copied');
  vq.dispose();
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

t.test('CLI: dd2 train tokenizer, then dd2 encode', async (t) => {
  const out = join(dir, 'cli');
  const s = JSON.parse(await cli(makeTrainTokenizerCommand(), ['--channels', '8', '--codebook-size', '32', '--code-dim', '4',
    '--steps', '10', '--batch-size', '8', '--train-limit', '64', '--eval-limit', '16', '--out', out, '--json']));
  t.equal(s.steps, 10, 'trained 10 steps');
  t.same(s.grid, [7, 7], '7x7 tokens');
  t.ok(Number.isFinite(s.testPsnr) && s.codesUsed > 0, `summary has PSNR ${s.testPsnr.toFixed(2)} and codes used ${s.codesUsed}`);
  t.ok(existsSync(join(out, 'vq.safetensors')) && existsSync(join(out, 'reconstructions.png')), 'model and grid written');
  await t.rejects(cli(makeTrainTokenizerCommand(), ['--steps', '10', '--out', out]), /already holds a run/, 'refuses to overwrite a run');
  const tokens = join(dir, 'cli-tokens.safetensors');
  const e = JSON.parse(await cli(makeEncodeCommand(), ['--tokenizer', join(out, 'vq.safetensors'), '--split', 'test', '--limit', '20',
    '--out', tokens, '--json']));
  t.same([e.images, e.codebookSize], [20, 32], 'encoded 20 images with K = 32');
  t.equal(readTokenCacheFile(tokens).n, 20, 'the cache holds them');
  await t.rejects(cli(makeEncodeCommand(), ['--tokenizer', join(dir, 'missing.safetensors')]), /does not exist/, 'missing tokenizer');
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'tensors back to baseline');
  t.equal(after.cpu.bytes, base.cpu.bytes, 'bytes back to baseline');
});
