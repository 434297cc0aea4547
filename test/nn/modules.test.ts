// The module system: dotted parameter names (PyTorch state_dict style), seeded initialisation, layer
// forwards against float64 references, train/eval, state-dict round trips and strict-load errors,
// buffers, and dispose() returning native memory to its baseline.
import t from 'tap';
import { tensor, zeros } from '../../lib/tensor/create.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { backward } from '../../lib/autograd/tape.js';
import { sum } from '../../lib/tensor/ops/reduce.js';
import { Module, ModuleList } from '../../lib/nn/module.js';
import { Embedding, GroupNorm, LayerNorm, Linear, RMSNorm } from '../../lib/nn/layers.js';
import { expectClose, expectCloseScaled, EPS32, Rng } from '../harness/compare.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { getDefaultDevice } from '../../lib/tensor/create.js';

// Counters of the device the suite runs on (cpu, or cuda under DD2_DEFAULT_DEVICE=cuda).
const dev = getDefaultDevice();

const rng = new Rng(5);
const before = memory();

class Attn extends Module {
  wqkv: Linear;
  proj: Linear;
  constructor(d: number, gen: Generator) {
    super();
    this.wqkv = this.registerModule('wqkv', new Linear(d, 3 * d, { bias: false, gen }));
    this.proj = this.registerModule('proj', new Linear(d, d, { gen }));
  }
}
class Block extends Module {
  norm: RMSNorm;
  attn: Attn;
  constructor(d: number, gen: Generator) {
    super();
    this.norm = this.registerModule('norm', new RMSNorm(d));
    this.attn = this.registerModule('attn', new Attn(d, gen));
  }
}
class Net extends Module {
  tok: Embedding;
  blocks: ModuleList<Block>;
  ln: LayerNorm;
  head: Linear;
  constructor(seed: number, d = 8, v = 11, layers = 2) {
    super();
    const gen = new Generator(seed);
    this.tok = this.registerModule('tok', new Embedding(v, d, { gen }));
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: layers }, () => new Block(d, gen))));
    this.ln = this.registerModule('ln', new LayerNorm(d));
    this.head = this.registerModule('head', new Linear(d, v, { gen }));
    this.registerBuffer('pos', tensor(rng.uniform(4 * d), [4, d]));
    this.registerBuffer('scratch', zeros([3]), false);
  }
}

const names = [
  'tok.weight',
  'blocks.0.norm.weight', 'blocks.0.attn.wqkv.weight', 'blocks.0.attn.proj.weight', 'blocks.0.attn.proj.bias',
  'blocks.1.norm.weight', 'blocks.1.attn.wqkv.weight', 'blocks.1.attn.proj.weight', 'blocks.1.attn.proj.bias',
  'ln.weight', 'ln.bias', 'head.weight', 'head.bias',
];

t.test('named parameters, buffers, modules and flags', async (t) => {
  const net = tidy(() => new Net(1));   // parameters survive the scope they were built in
  t.same(net.namedParameters().map(([k]) => k), names, 'dotted names in registration order');
  t.same(net.namedParameters().map(([, p]) => p.shape), [[11, 8], [8], [24, 8], [8, 8], [8], [8], [24, 8], [8, 8], [8],
    [8], [8], [11, 8], [11]], 'shapes');
  t.ok(net.parameters().every((p) => p.requiresGrad && !p.disposed && p.isDense()), 'live, dense, require grad');
  t.equal(net.numParameters(), 88 + 2 * (8 + 192 + 64 + 8) + 16 + 88 + 11, 'parameter count');
  t.same(net.namedBuffers().map(([k]) => k), ['pos', 'scratch'], 'buffers');
  t.same([...net.stateDict().keys()], [...names, 'pos'], 'stateDict has parameters and persistent buffers');
  t.same(net.namedModules().map(([k]) => k).slice(0, 5), ['', 'tok', 'blocks', 'blocks.0', 'blocks.0.norm'], 'module names');
  t.equal(net.blocks.get(-1), net.blocks.items[1], 'ModuleList negative index');
  t.throws(() => net.blocks.get(2), /index 2 out of range/, 'ModuleList range check');
  net.eval();
  t.ok(net.namedModules().every(([, m]) => !m.training), 'eval() reaches every module');
  net.train();
  t.ok(net.blocks.get(1).attn.proj.training, 'train() reaches every module');
  tidy(() => {   // a rejected tensor stays the caller's (freed by this scope)
    t.throws(() => net.registerParameter('a.b', zeros([1])), /without '\.'/, 'dotted member name rejected');
    t.throws(() => net.registerParameter('tok', zeros([1])), /taken by another kind/, 'name clash rejected');
  });
  net.dispose();
  t.ok(net.disposed, 'disposed');
});

t.test('initialisation is seeded and follows PyTorch bounds', async (t) => {
  const a = new Net(7), b = new Net(7), c = new Net(8);
  const sa = a.stateDict(), sb = b.stateDict(), sc = c.stateDict();
  t.ok(names.every((k) => sa.get(k)!.every((v, i) => v === sb.get(k)![i])), 'same seed, same weights');
  t.notSame(sa.get('head.weight'), sc.get('head.weight'), 'different seed, different weights');
  a.dispose(); b.dispose(); c.dispose();

  const gen = new Generator(3);
  const lin = new Linear(400, 300, { gen });
  const w = lin.weight.toFloat32Array(), bound = 1 / Math.sqrt(400);
  t.ok(w.every((v) => Math.abs(v) <= bound), `|W| <= 1/sqrt(in) = ${bound}`);
  const mean = w.reduce((s, v) => s + v, 0) / w.length;
  const vr = w.reduce((s, v) => s + v * v, 0) / w.length;
  // 120000 samples of U(±b): sd of the mean b/sqrt(3n) = 8e-5; of the variance ~ b²/(3 sqrt(n)) (relative 0.3%)
  t.ok(Math.abs(mean) < 5 * bound / Math.sqrt(3 * w.length), `weight mean ${mean.toExponential(2)} ~ 0`);
  t.ok(Math.abs(vr / (bound * bound / 3) - 1) < 0.02, `weight variance ${vr.toExponential(3)} ~ b²/3 = ${(bound * bound / 3).toExponential(3)}`);
  const emb = new Embedding(500, 64, { gen });
  const e = emb.weight.toFloat32Array();
  const sd = Math.sqrt(e.reduce((s, v) => s + v * v, 0) / e.length);
  t.ok(Math.abs(sd / 0.02 - 1) < 0.02, `embedding std ${sd.toFixed(5)} ~ 0.02`);
  lin.dispose(); emb.dispose();
});

// Linear: a float32 GEMM of K = 13 terms; |err| / sum|x_k w_k| measured ~1e-7; tol 16 u.
t.test('layer forwards', async (t) => {
  const gen = new Generator(9);
  const lin = new Linear(13, 5, { gen });
  tidy(() => {
    const x0 = rng.uniform(3 * 2 * 13), x = tensor(x0, [3, 2, 13]);
    const y = lin.forward(x);
    t.same(y.shape, [3, 2, 5], 'Linear output shape');
    const w = lin.weight.toFloat32Array(), b = lin.bias!.toFloat32Array();
    const want = new Float64Array(30), scale = new Float64Array(30);
    for (let r = 0; r < 6; r++) {
      for (let o = 0; o < 5; o++) {
        let s = b[o], a = Math.abs(b[o]);
        for (let k = 0; k < 13; k++) { s += x0[r * 13 + k] * w[o * 13 + k]; a += Math.abs(x0[r * 13 + k] * w[o * 13 + k]); }
        want[r * 5 + o] = s; scale[r * 5 + o] = a;
      }
    }
    expectCloseScaled(t, 'Linear vs float64', y.toFloat32Array(), want, scale, 16 * EPS32);
    t.throws(() => lin.forward(tensor(rng.uniform(12), [12])), /Linear\(13, 5\): input \[12\] must end in 13/, 'input size checked');
    const nb = new Linear(4, 2, { bias: false, gen });
    t.same(nb.namedParameters().map(([k]) => k), ['weight'], 'bias: false has no bias');
    nb.dispose();

    // Norm layers: statistics of the output (the ops' numerics are tested in test/kernels).
    const h = tensor(rng.uniform(4 * 16, -3, 5), [4, 16]);
    const rowStats = (y: Float32Array, D: number): [number, number][] => Array.from({ length: y.length / D }, (_, r) => {
      const row = y.subarray(r * D, (r + 1) * D);
      const m = row.reduce((s, v) => s + v, 0) / D;
      return [m, row.reduce((s, v) => s + v * v, 0) / D];
    });
    const ln = new LayerNorm(16), rn = new RMSNorm(16), gn = new GroupNorm(2, 6);
    const lnStats = rowStats(ln.forward(h).toFloat32Array(), 16);
    expectClose(t, 'LayerNorm rows: mean 0', lnStats.map((s) => s[0]), [0, 0, 0, 0], { atol: 1e-6 });
    expectClose(t, 'LayerNorm rows: E[y²] = var/(var+eps) ~ 1', lnStats.map((s) => s[1]), [1, 1, 1, 1], { atol: 1e-4 });
    const rnStats = rowStats(rn.forward(h).toFloat32Array(), 16);
    expectClose(t, 'RMSNorm rows: mean square ~ 1', rnStats.map((s) => s[1]), [1, 1, 1, 1], { atol: 1e-4 });
    const g = gn.forward(tensor(rng.uniform(2 * 6 * 5, -1, 3), [2, 6, 5])).toFloat32Array();
    const gStats = rowStats(g, 15);    // groups of 3 channels x 5 positions are contiguous
    expectClose(t, 'GroupNorm groups: mean 0', gStats.map((s) => s[0]), [0, 0, 0, 0], { atol: 1e-6 });
    expectClose(t, 'GroupNorm groups: E[y²] ~ 1', gStats.map((s) => s[1]), [1, 1, 1, 1], { atol: 1e-3 });
    t.throws(() => gn.forward(tensor(rng.uniform(10), [2, 5])), /GroupNorm\(2, 6\): input \[2, 5\] must be \(N, 6, \.\.\.\)/, 'GroupNorm channel check');
    t.throws(() => new GroupNorm(4, 6), /6 channels do not split into 4 groups/, 'GroupNorm groups check');
    const emb = new Embedding(7, 3, { gen });
    const ew = emb.weight.toFloat32Array();
    const got = emb.forward(tensor(new Int32Array([6, 0, 6]))).toFloat32Array();
    t.same(Array.from(got), [...ew.slice(18, 21), ...ew.slice(0, 3), ...ew.slice(18, 21)], 'Embedding picks rows');
    for (const m of [ln, rn, gn, emb]) m.dispose();
  });
  lin.dispose();
});

t.test('state dict round trip and strict loading', async (t) => {
  const a = new Net(1), b = new Net(2);
  const run = (n: Net): Float32Array => tidy(() =>
    n.head.forward(n.ln.forward(n.blocks.get(1).attn.proj.forward(n.tok.forward(tensor(new Int32Array([1, 5, 9])))))).toFloat32Array());
  t.notSame(run(a), run(b), 'different models differ');
  const res = b.loadStateDict(a.stateDict());
  t.same(res, { missing: [], unexpected: [] }, 'strict load of a full state dict');
  t.same(run(b), run(a), 'outputs identical after loading');
  t.same(b.namedBuffers()[0][1].toFloat32Array(), a.namedBuffers()[0][1].toFloat32Array(), 'persistent buffer loaded');

  const sd = a.stateDict();
  const snapshot = b.stateDict();
  const missing = new Map(sd);
  missing.delete('blocks.1.attn.proj.bias');
  t.throws(() => b.loadStateDict(missing), /missing keys: blocks\.1\.attn\.proj\.bias/, 'missing key named');
  const extra = new Map(sd).set('blocks.2.norm.weight', new Float32Array(8));
  t.throws(() => b.loadStateDict(extra), /unexpected keys: blocks\.2\.norm\.weight/, 'unexpected key named');
  const bad = new Map<string, Float32Array | { shape: number[]; data: Float32Array }>(sd);
  bad.set('head.weight', { shape: [8, 11], data: new Float32Array(88) });
  t.throws(() => b.loadStateDict(bad), /shape mismatch for 'head\.weight': checkpoint has shape \[8, 11\] \(88 values\), model has \[11, 8\]/,
    'shape mismatch names the parameter and both shapes');
  bad.set('head.weight', sd.get('head.weight')!);
  bad.set('ln.bias', new Float32Array(9));
  t.throws(() => b.loadStateDict(bad), /'ln\.bias': checkpoint has 9 values, model has shape \[8\] \(8 values\)/,
    'length mismatch of bare data named');
  t.same(b.stateDict(), snapshot, 'a failed load writes nothing');
  const partial = new Map([['head.bias', new Float32Array(11).fill(0.5)], ['nope', new Float32Array(1)]]);
  const r = b.loadStateDict(partial, { strict: false });
  t.same(r.unexpected, ['nope'], 'non-strict: unexpected keys reported');
  t.equal(r.missing.length, names.length, 'non-strict: missing keys reported (all but head.bias, plus pos)');
  t.same(Array.from(b.head.bias!.toFloat32Array()), new Array(11).fill(0.5), 'non-strict: present keys loaded');
  a.dispose(); b.dispose();
});

t.test('dispose frees parameters, gradients and buffers', async (t) => {
  const base = memory();
  const net = new Net(4);
  tidy(() => {
    const y = net.head.forward(net.ln.forward(net.tok.forward(tensor(new Int32Array([0, 3, 10])))));
    backward(sum(y));
  });
  const grads = net.parameters().filter((p): p is Tensor & { grad: Tensor } => !!p.grad);
  t.same(grads.length, 5, 'tok, ln and head have gradients');
  t.ok(memory()[dev].bytes > base[dev].bytes, 'the model holds memory');
  net.dispose();
  net.dispose();   // idempotent
  const after = memory();
  t.ok(grads.every((p) => p.grad === null), 'gradients released');
  t.equal(after.tensors, base.tensors, `tensors back to baseline (${after.tensors})`);
  t.equal(after[dev].live, base[dev].live, `native storages back to baseline (${after[dev].live})`);
  t.equal(after[dev].bytes, base[dev].bytes, `native bytes back to baseline (${after[dev].bytes})`);
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, 'live tensors back to baseline');
  t.equal(after[dev].bytes, before[dev].bytes, 'native bytes back to baseline');
  t.equal(after[dev].live, before[dev].live, 'native storages back to baseline');
});
