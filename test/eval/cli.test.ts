// `dd2 eval` end to end through bin/dd2.js (needs `npx tsc -p .`): usage errors exit 2, bad files exit 1
// with a message naming the file; readSamplesNpz reads what `dd2 sample` writes (a tiny random GPT + VQ
// tokenizer made here); and, once the shipped feature network and the metric code are present, a run over
// real MNIST test images, uniform-noise images and the tiny teacher gives one JSON table with every column.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { joinRoot, native } from '../../lib/tensor/native.js';
import { Generator } from '../../lib/tensor/random.js';
import { saveModel } from '../../lib/io/checkpoint.js';
import { writeNpz } from '../../lib/io/npz.js';
import { defaultVQConfig, levelsFor, VQModel, type VQConfig } from '../../lib/models/vq.js';
import { GPT, resolveGPTConfig } from '../../lib/models/gpt.js';
import { loadDataset } from '../../lib/data/dataset.js';
import { readSamplesNpz } from '../../lib/eval/npz-samples.js';
import { FeatureNet, FEATURE_NET_KIND, weightsSha256 } from '../../lib/metrics/feature-net.js';

const bin = joinRoot('bin', 'dd2.js');
const built = existsSync(joinRoot('dist', 'lib', 'cli', 'commands', 'eval.js'));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });
const linalgMissing = typeof (native as unknown as Record<string, unknown>).sym_eig_f64 !== 'function' ? 'the addon has no sym_eig_f64 / gemm_f64 (rebuild it)' : '';
const assetsMissing = existsSync(joinRoot('assets', 'featnet', 'mnist.safetensors')) ? '' : 'assets/featnet/mnist.safetensors (the shipped network) is not there';

const dir = mkdtempSync(join(tmpdir(), 'dd2-eval-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A random 28x28x1 VQ tokenizer (7x7 tokens, 16 codes) recorded as trained on MNIST, and a tiny GPT on it. */
/** A random (untrained) feature network recorded as an MNIST one: exercises the plumbing, not the numbers. */
function randomFeatnet(): string {
  const net = new FeatureNet(4), path = join(dir, 'featnet-random.safetensors');
  const state = net.stateDict(), shapes = net.stateShapes();
  saveModel(path, net, { kind: FEATURE_NET_KIND, config: {}, step: 0, options: { featnet: { dataset: 'mnist', sha256: weightsSha256(state, shapes),
    testAccuracy: 0, recipe: '{}', stats: 'none.npz', params: 0 } } });
  net.dispose();
  return path;
}

function tinyModels(): { vq: string; gpt: string } {
  const cfg: VQConfig = { ...defaultVQConfig, imageSize: 28, imageChannels: 1, ...levelsFor(4), channels: 4, zChannels: 8,
    codebookSize: 16, codeDim: 4, groups: 2 };
  const vq = new VQModel(cfg, 1), vqPath = join(dir, 'vq.safetensors');
  saveModel(vqPath, vq, { kind: 'vq', config: cfg, step: 0, options: { dataset: 'mnist' } });
  vq.dispose();
  const gcfg = resolveGPTConfig({ vocabSize: 16, numClasses: 10, gridH: 7, gridW: 7, dim: 16, nLayer: 1, nHead: 2, multipleOf: 16 });
  const gpt = new GPT(gcfg, new Generator(2)), gptPath = join(dir, 'gpt.safetensors');
  saveModel(gptPath, gpt, { kind: 'gpt', config: gcfg, step: 0, tokenizer: vqPath });
  gpt.dispose();
  return { vq: vqPath, gpt: gptPath };
}

const { gpt } = tinyModels();

t.test('dd2 eval: errors, help, and reading what dd2 sample writes', { skip: built ? false : 'dist/ not built (run npx tsc -p .)' }, async (t) => {
  const none = run('eval');
  t.equal(none.status, 2, 'nothing to evaluate is a usage error');
  t.match(none.stderr, /pass --samples <file\.npz> and\/or --model <checkpoint>/);
  const missing = run('eval', '--samples', join(dir, 'missing.npz'));
  t.equal(missing.status, 2, 'a missing --samples file is a usage error');
  t.match(missing.stderr, /--samples: .*missing\.npz does not exist/);
  const missingModel = run('eval', '--model', join(dir, 'missing.safetensors'));
  t.equal(missingModel.status, 2, 'a missing --model file is a usage error');
  const badKeys = join(dir, 'bad-keys.npz');
  writeNpz(badKeys, { pics: { dtype: 'uint8', shape: [2, 28, 28, 1], data: new Uint8Array(2 * 784) } });
  const bk = run('eval', '--samples', badKeys);
  t.equal(bk.status, 1, 'an npz without images fails');
  t.match(bk.stderr, /bad-keys\.npz holds \[pics\]; expected 'images'/, 'naming the file and the keys it needs');
  const vqAsModel = run('eval', '--model', join(dir, 'vq.safetensors'), '--n', '4');
  t.equal(vqAsModel.status, 1, 'a checkpoint of a kind without a sampler fails');
  t.match(vqAsModel.stderr, /holds a 'vq' checkpoint; images can be drawn from ('ar-diffusion', )?'gpt'/);
  const help = run('eval', '--help');
  t.equal(help.status, 0);
  for (const w of ['FID', 'IS', 'prec/recall', 'class acc', 'PPL', 'latency', 'img/s', 'speed-up', 'steps']) t.match(help.stdout, w, `--help explains ${w}`);

  // what `dd2 sample` writes is what readSamplesNpz reads
  const sout = join(dir, 'sampled');
  const smp = run('sample', '--model', gpt, '--n', '4', '--class', '3,7', '--cfg', '1.5', '--out', sout);
  t.equal(smp.status, 0, `dd2 sample ran: ${smp.stderr.slice(-300)}`);
  const set = readSamplesNpz(join(sout, 'samples.npz'));
  t.same([set.layout, set.n, set.height, set.width, set.channels], ['dd2', 4, 28, 28, 1], 'images (4, 28, 28, 1)');
  t.same(Array.from(set.labels!), [3, 7, 3, 7], 'labels as requested');
  t.equal(set.tokens!.length, 4 * 49, 'tokens (4, 49)');
  t.ok(set.tokens!.every((v) => v >= 0 && v < 16), 'token values are codes');

});

const real = join(dir, 'real.npz'), noise = join(dir, 'noise.npz'), refAdm = join(dir, 'ref-adm.npz');
async function writeImageFiles(): Promise<void> {
  const train = await loadDataset('mnist', 'train', { limit: 500 });
  writeNpz(real, { arr_0: { dtype: 'uint8', shape: [500, 28, 28, 1], data: train.images }, arr_1: { dtype: 'int32', shape: [500], data: train.labels! } });
  const rng = new Generator(9).uniform([500 * 784], 'cpu');
  writeNpz(noise, { arr_0: { dtype: 'uint8', shape: [500, 28, 28, 1], data: Uint8Array.from(rng.toFloat32Array(), (u) => Math.floor(u * 256)) } });
  rng.dispose();
  const test = await loadDataset('mnist', 'test', { limit: 300 });
  writeNpz(refAdm, { arr_0: { dtype: 'uint8', shape: [300, 28, 28, 1], data: test.images } });
}

t.test('dd2 eval: the whole table with a random feature network', { skip: !built ? 'dist/ not built (run npx tsc -p .)' : linalgMissing || false }, async (t) => {
  await writeImageFiles();
  const featnet = randomFeatnet();
  const big = join(dir, 'big.npz');
  writeNpz(big, { arr_0: { dtype: 'uint8', shape: [2, 32, 32, 1], data: new Uint8Array(2 * 1024) } });
  const mis = run('eval', '--samples', big, '--featnet', featnet, '--ref', refAdm);
  t.equal(mis.status, 1, 'images of the wrong size fail');
  t.match(mis.stderr, /images are 32x32x1 but domain:featnet-random\.safetensors takes 28x28x1; pass --resize/);
  const resized = run('eval', '--samples', big, '--featnet', featnet, '--ref', refAdm, '--resize', '--json');
  t.equal(resized.status, 0, `--resize makes them fit: ${resized.stderr.slice(-300)}`);

  const out = join(dir, 'evalout-random');
  const r = run('eval', '--samples', real, noise, '--model', gpt, '--featnet', featnet, '--ref', refAdm, '--n', '12', '--batch-size', '6',
    '--repeats', '1', '--warmup', '0', '--json', '--out', out);
  t.equal(r.status, 0, `dd2 eval ran: ${r.stderr.slice(-500)}`);
  const j = JSON.parse(r.stdout) as { columns: string[]; rows: Record<string, number | null | string>[]; dataset: string; net: string };
  t.same(JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8')).rows, j.rows, 'eval.json holds the same rows');
  t.equal(j.dataset, 'mnist', 'the dataset comes from the tokenizer meta');
  t.match(j.net, /^domain:featnet-random\.safetensors@[0-9a-f]{64}$/);
  t.same(j.rows.map((x) => x.name), ['teacher', 'real.npz', 'noise.npz'], 'model rows first, then files');
  for (const row of j.rows) for (const c of j.columns) t.ok(c in row, `${row.name}: column ${c}`);
  const [teacher, re, no] = j.rows;
  for (const row of j.rows) t.ok(Number.isFinite(row.fid) && Number.isFinite(row.is) && Number.isFinite(row.precision), `${row.name}: FID, IS, precision are numbers`);
  t.ok(typeof re.classAccuracy === 'number' && no.classAccuracy === null, 'class accuracy only where there are labels');
  t.equal(teacher.steps, 49, 'the teacher takes 49 steps per image');
  t.ok((teacher.latencyMs as number) > 0 && (teacher.throughput as number) > 0 && teacher.speedup === 1, 'the teacher row is timed');
  t.equal(re.latencyMs, null, 'a samples file is not timed');
  t.equal(teacher.ppl, null, 'the AR teacher has no noise input, so no PPL');
  const text = run('eval', '--samples', real, '--featnet', featnet, '--ref', refAdm, '--n', '50');
  t.equal(text.status, 0);
  t.match(text.stdout, /FID +IS +prec +recall +class acc/, 'without --json: the text table');
  t.match(text.stdout, /metrics: n=50, network domain:featnet-random\.safetensors@[0-9a-f]{12}, reference .*ref-adm\.npz \(statistics computed here from arr_0, n=300\)/);
});

t.test('dd2 eval: real MNIST, noise and the teacher with the shipped network', { skip: !built ? 'dist/ not built (run npx tsc -p .)'
  : linalgMissing || assetsMissing || false }, async (t) => {
  if (!existsSync(real)) await writeImageFiles();

  const r = run('eval', '--samples', real, noise, '--json');
  t.equal(r.status, 0, `dd2 eval ran: ${r.stderr.slice(-500)}`);
  const j = JSON.parse(r.stdout) as { rows: Record<string, number | null | string>[]; ref: string };
  t.match(j.ref, /^mnist:test \(statistics shipped with the network, n=10000\)$/, 'the default reference: shipped test statistics');
  const [re, no] = j.rows;
  t.comment(`500 real train images: dFID ${re.fid}, IS ${re.is}, P ${re.precision}, R ${re.recall}, acc ${re.classAccuracy}; ` +
    `noise: dFID ${no.fid}, IS ${no.is}, P ${no.precision}, R ${no.recall}`);
  t.ok((no.fid as number) > 20 * (re.fid as number), `dFID of 500 real train images (${re.fid}) is far below uniform noise's (${no.fid})`);
  t.ok((re.classAccuracy as number) > 0.95, `real images are classified as their labels: ${re.classAccuracy}`);
  t.equal(no.classAccuracy, null, 'no labels, no class accuracy');
  t.ok((re.precision as number) > 0.8 && (re.recall as number) > 0.8, `real images: precision ${re.precision}, recall ${re.recall}`);
  t.ok((no.recall as number) < 0.05, `noise: recall ${no.recall} (its precision, ${no.precision}, is not informative: test/eval/metrics.test.ts)`);
  const m = run('eval', '--model', gpt, '--n', '24', '--batch-size', '12', '--no-speed', '--json');
  t.equal(m.status, 0, `dd2 eval --model ran: ${m.stderr.slice(-500)}`);
  const [teacher] = (JSON.parse(m.stdout) as { rows: Record<string, number | null | string>[] }).rows;
  t.ok((teacher.fid as number) > (re.fid as number), `an untrained teacher is worse than real images: dFID ${teacher.fid}`);
  t.equal(teacher.latencyMs, null, '--no-speed: no timing');
});
