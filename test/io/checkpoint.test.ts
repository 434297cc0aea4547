// Checkpoints: saveModel/loadModelFile with the '__dd2__' meta; RunDir (run.json, log.jsonl, the
// pointer, keeping the last two sets, hard links to the newest model); and a bit-exact resume: a tiny
// MLP with dropout, an unused parameter, a buffer, AdamW with two groups, a cosine schedule, gradient
// clipping and EMA trained 6 steps in one go equals 3 steps + save + load into fresh objects + 3 steps,
// byte for byte (parameters, EMA, moments). Restoring without the optimizer state must differ (control).
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../../lib/tensor/create.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { Generator, type GeneratorState } from '../../lib/tensor/random.js';
import { backward } from '../../lib/autograd/tape.js';
import { gelu } from '../../lib/tensor/ops/elementwise.js';
import { dropout } from '../../lib/tensor/ops/dropout.js';
import { crossEntropy } from '../../lib/tensor/ops/softmax.js';
import { Module } from '../../lib/nn/module.js';
import { Linear } from '../../lib/nn/layers.js';
import { normal } from '../../lib/nn/init.js';
import { AdamW, clipGradNorm, cosineSchedule, EMA } from '../../lib/nn/optim.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import {
  loadModelFile, loadModelInto, restoreTrainingState, RunDir, saveModel, type CheckpointMeta,
} from '../../lib/io/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';

const B = 8, IN = 6, HID = 16, OUT = 4, TOTAL = 6;

class Tiny extends Module {
  readonly fc1: Linear; readonly fc2: Linear; readonly unused: Tensor;
  constructor(seed: number) {
    super();
    const gen = new Generator(seed);
    this.fc1 = this.registerModule('fc1', new Linear(IN, HID, { gen }));
    this.fc2 = this.registerModule('fc2', new Linear(HID, OUT, { gen }));
    this.unused = this.registerParameter('unused', normal([3], 1, 0, gen));   // never gets a gradient
    this.registerBuffer('scale', tensor(new Float32Array([seed, 2 * seed]), [2]));
  }
  forward(x: Tensor, gen: Generator): Tensor {
    return this.fc2.forward(dropout(gelu(this.fc1.forward(x)), 0.25, gen, this.training));
  }
}

interface Run { model: Tiny; opt: AdamW; ema: EMA; gen: Generator; batcher: { pos: number } }
const meta: CheckpointMeta = { kind: 'tiny', config: { IN, HID, OUT }, step: 0, options: { lr: 1e-2 } };

function fresh(seed: number): Run {
  const model = new Tiny(seed);
  const named = model.namedParameters();
  const decay = named.filter(([, p]) => p.rank === 2).map(([, p]) => p);
  const noDecay = named.filter(([, p]) => p.rank !== 2).map(([, p]) => p);
  const opt = new AdamW([{ params: decay }, { params: noDecay, weightDecay: 0 }], { lr: 1e-2, weightDecay: 0.05 });
  return { model, opt, ema: new EMA(model, 0.8), gen: new Generator(1234), batcher: { pos: 0 } };
}

const lr = cosineSchedule({ warmup: 2, total: TOTAL, base: 2e-2, min: 1e-3 });
const labels = new Int32Array(64).map((_, i) => (i * 5 + 3) % OUT);

function trainStep(r: Run, step: number): void {
  r.opt.setLr(lr(step));
  const y = labels.subarray(r.batcher.pos, r.batcher.pos + B);
  r.batcher.pos = (r.batcher.pos + B) % labels.length;
  tidy(() => {
    const x = r.gen.normal([B, IN]);
    backward(crossEntropy(r.model.forward(x, r.gen), tensor(y, [B])));
    clipGradNorm(r.model.parameters(), 0.5);
    r.opt.step();
    r.opt.zeroGrad();
    r.ema.update();
  });
}

function free(r: Run): void { r.opt.dispose(); r.ema.dispose(); r.model.dispose(); }

function snapshot(r: Run): Buffer {
  const parts: Buffer[] = [];
  for (const v of r.model.stateDict().values()) parts.push(Buffer.from(v.buffer));
  for (const s of r.ema.shadow) parts.push(Buffer.from(s.toFloat32Array().buffer));
  for (const e of r.opt.stateDict().params) if (e) parts.push(Buffer.from(e.m.buffer), Buffer.from(e.v.buffer));
  return Buffer.concat(parts);
}

t.test('saveModel / loadModelFile', async (t) => {
  const base = memory();
  const dir = t.testdir();
  const m = new Tiny(3);
  const p = join(dir, 'm.safetensors');
  const mt: CheckpointMeta = { kind: 'tiny', config: { a: [1, 2] }, step: 17, options: { x: 'y' }, tokenizer: 'runs/vq/vq.safetensors' };
  saveModel(p, m, mt);
  const r = loadModelFile(p);
  t.same(r.meta, mt, 'meta round trip');
  t.same(new Set(r.state.keys()), new Set(m.stateDict().keys()), 'parameters and persistent buffers');
  t.same(r.shapes.get('fc1.weight'), [HID, IN], 'shape');
  for (const [k, v] of m.stateDict()) t.ok(Buffer.from(r.state.get(k)!.buffer).equals(Buffer.from(v.buffer)), `${k} bytes`);
  t.same(JSON.parse(readSafetensors(p).metadata.__dd2__), mt, "metadata '__dd2__' is the JSON of the meta");
  const m2 = new Tiny(9);
  t.same(loadModelInto(m2, p), mt, 'loadModelInto returns the meta');
  t.same([...m2.stateDict().values()].map((v) => Array.from(v)), [...m.stateDict().values()].map((v) => Array.from(v)), 'loaded into a module');
  const plain = join(dir, 'plain.safetensors');
  writeSafetensors(plain, new Map([['w', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]]));
  t.throws(() => loadModelFile(plain), /plain\.safetensors is not a dd2 checkpoint \(no '__dd2__' metadata\)/);
  t.throws(() => saveModel(p, m, { kind: '', config: {}, step: 1 }), /meta needs a non-empty string 'kind'/);
  m.dispose(); m2.dispose();
  t.equal(memory().tensors, base.tensors, 'no tensors left');
});

t.test('RunDir: files, pointer, pruning, links, log', async (t) => {
  const base = memory();
  const dir = join(t.testdir(), 'run');
  const rd = RunDir.create(dir, { lr: 1, name: 'x' });
  t.same(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')), { lr: 1, name: 'x' }, 'run.json holds the config');
  t.equal(rd.loadTrainingState('ck'), null, 'nothing saved yet -> null');
  const r = fresh(1);
  for (const step of [10, 20, 30]) {
    trainStep(r, step);
    const files = rd.saveTrainingState('ck', { module: r.model, optimizer: r.opt, ema: r.ema, step, rng: r.gen.state(), batcher: { ...r.batcher }, meta });
    t.ok(files.model.endsWith(`ck-model-0000${step}.safetensors`), `model file named by step ${step}`);
    rd.log({ step, loss: 1 / step });
  }
  const names = readdirSync(dir).sort();
  t.same(names, ['ck-ema-000020.safetensors', 'ck-ema-000030.safetensors', 'ck-ema.safetensors', 'ck-latest.json',
    'ck-model-000020.safetensors', 'ck-model-000030.safetensors', 'ck-optim-000020.safetensors', 'ck-optim-000030.safetensors',
    'ck.safetensors', 'log.jsonl', 'run.json'], 'the last two sets are kept, the first deleted, no temporary files');
  t.equal(statSync(rd.modelPath('ck')).ino, statSync(join(dir, 'ck-model-000030.safetensors')).ino, 'ck.safetensors is a link to the newest model');
  t.equal(loadModelFile(rd.emaPath('ck')).meta.step, 30, 'ck-ema.safetensors is a model file of step 30');
  const ptr = JSON.parse(readFileSync(join(dir, 'ck-latest.json'), 'utf8'));
  t.equal(ptr.step, 30, 'pointer names step 30');
  t.same(ptr.state.batcher, r.batcher, 'pointer holds the batcher state');
  const emaModel = loadModelFile(join(dir, 'ck-ema-000030.safetensors'));
  t.ok(Buffer.from(emaModel.state.get('fc1.weight')!.buffer).equals(Buffer.from(r.ema.shadow[r.model.parameters().indexOf(r.model.fc1.weight)].toFloat32Array().buffer)),
    'the EMA file holds the EMA weights under the model names');
  t.same(Array.from(emaModel.state.get('scale')!), [1, 2], 'and the buffers');
  const log = rd.readLog();
  t.same(log.map((l) => l.step), [10, 20, 30], 'log.jsonl records');
  t.match(log[0].time, /^\d{4}-\d\d-\d\dT/, 'with an ISO time');
  writeFileSync(join(dir, 'log.jsonl'), readFileSync(join(dir, 'log.jsonl'), 'utf8') + '{"step": 4');
  t.equal(rd.readLog().length, 3, 'a cut last line is skipped');
  const again = RunDir.open(dir);
  t.same(again.config, { lr: 1, name: 'x' }, 'open reads the config');
  t.equal(again.latestStep('ck'), 30);
  const st = again.loadTrainingState('ck')!;
  t.equal(st.step, 30);
  t.same(st.rng, r.gen.state(), 'RNG state round trip');
  t.equal(st.optimizer!.params.filter((p) => p === null).length, 1, 'the never-stepped parameter has no moments');
  t.equal(st.ema!.updates, 3, 'EMA update count');
  t.throws(() => RunDir.open(join(dir, 'nope')), /is not a run folder \(no run\.json\)/);
  t.throws(() => rd.saveTrainingState('bad/name', { module: r.model, step: 1, meta }), /name 'bad\/name' must match/);
  free(r);
  t.equal(memory().tensors, base.tensors, 'no tensors left');
  t.equal(memory().cpu.bytes, base.cpu.bytes, 'no bytes left');
});

t.test('resume is bit-exact on the CPU', async (t) => {
  const base = memory();
  const dir = join(t.testdir(), 'run');
  const a = fresh(5);
  for (let s = 0; s < TOTAL; s++) trainStep(a, s);
  const want = snapshot(a);

  const b = fresh(5);
  for (let s = 0; s < TOTAL / 2; s++) trainStep(b, s);
  RunDir.create(dir, {}).saveTrainingState('tiny', {
    module: b.model, optimizer: b.opt, ema: b.ema, step: TOTAL / 2, rng: b.gen.state(), batcher: { ...b.batcher }, meta,
  });
  free(b);

  const resume = (withOptimizer: boolean): Buffer => {
    const st = RunDir.open(dir).loadTrainingState('tiny')!;
    const c = fresh(77);   // different initial weights: everything must come from the checkpoint
    restoreTrainingState(st, { module: c.model, optimizer: withOptimizer ? c.opt : undefined, ema: c.ema });
    c.gen = Generator.fromState(st.rng as GeneratorState);
    c.batcher = { ...(st.batcher as { pos: number }) };
    for (let s = st.step; s < TOTAL; s++) trainStep(c, s);
    const got = snapshot(c);
    free(c);
    return got;
  };
  const got = resume(true);
  t.equal(got.length, want.length, 'same amount of state');
  t.ok(got.equals(want), `parameters, EMA and AdamW moments identical to the uninterrupted run (${want.length} bytes)`);
  const control = resume(false);
  t.notOk(control.subarray(0, 4 * 200).equals(want.subarray(0, 4 * 200)), 'control: without the optimizer state the weights differ');
  free(a);
  t.equal(memory().tensors, base.tensors, 'no tensors left');
  t.equal(memory().cpu.bytes, base.cpu.bytes, 'no bytes left');
  t.ok(existsSync(join(dir, 'tiny.safetensors')), 'newest-model link exists');
});
