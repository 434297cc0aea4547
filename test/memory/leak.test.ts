// Leak test: 100 training-like steps (forward through a transformer block, backward, clipGradNorm,
// AdamW.step, EMA.update), each inside tidy(). After the first step (which creates the optimiser
// moments and the gradients) memory() must not change at all across steps 2..100, a step that throws
// must leave nothing behind, and disposing model, optimiser and EMA must return to the initial baseline.
// Letters: B batch, T tokens, D width, H heads, V vocabulary.
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory, tidy, type Memory } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { backward } from '../../lib/autograd/tape.js';
import { add, silu } from '../../lib/tensor/ops/elementwise.js';
import { contiguous, permute, reshape, slice } from '../../lib/tensor/ops/shape.js';
import { attention } from '../../lib/tensor/ops/attention.js';
import { crossEntropy } from '../../lib/tensor/ops/softmax.js';
import { Module } from '../../lib/nn/module.js';
import { Embedding, LayerNorm, Linear, RMSNorm } from '../../lib/nn/layers.js';
import { AdamW, clipGradNorm, EMA } from '../../lib/nn/optim.js';
import { Rng } from '../harness/compare.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { getDefaultDevice } from '../../lib/tensor/create.js';

// Counters of the device the suite runs on (cpu, or cuda under DD2_DEFAULT_DEVICE=cuda).
const dev = getDefaultDevice();

const V = 32, T = 8, D = 16, H = 2, B = 4;

/** Embedding -> one pre-norm attention + SiLU-MLP block -> LayerNorm -> head. */
class Net extends Module {
  tok: Embedding; norm1: RMSNorm; wqkv: Linear; proj: Linear; norm2: RMSNorm; fc1: Linear; fc2: Linear;
  lnf: LayerNorm; head: Linear;
  constructor(gen: Generator) {
    super();
    this.tok = this.registerModule('tok', new Embedding(V, D, { gen }));
    this.norm1 = this.registerModule('norm1', new RMSNorm(D));
    this.wqkv = this.registerModule('wqkv', new Linear(D, 3 * D, { gen }));
    this.proj = this.registerModule('proj', new Linear(D, D, { gen }));
    this.norm2 = this.registerModule('norm2', new RMSNorm(D));
    this.fc1 = this.registerModule('fc1', new Linear(D, 4 * D, { gen }));
    this.fc2 = this.registerModule('fc2', new Linear(4 * D, D, { gen }));
    this.lnf = this.registerModule('lnf', new LayerNorm(D));
    this.head = this.registerModule('head', new Linear(D, V, { gen }));
  }

  /** idx int32 (B, T) -> logits (B, T, V) */
  forward(idx: Tensor): Tensor {
    const x = this.tok.forward(idx);
    const qkv = permute(reshape(this.wqkv.forward(this.norm1.forward(x)), [B, T, 3, H, D / H]), [2, 0, 3, 1, 4]);
    const [q, k, v] = [0, 1, 2].map((i) => reshape(slice(qkv, 0, i, i + 1), [B, H, T, D / H]));
    const o = reshape(contiguous(permute(attention(q, k, v, { causal: true }), [0, 2, 1, 3])), [B, T, D]);
    const h = add(x, this.proj.forward(o));
    const y = add(h, this.fc2.forward(silu(this.fc1.forward(this.norm2.forward(h)))));
    return this.head.forward(this.lnf.forward(y));
  }
}

const fmt = (m: Memory): string => `tensors=${m.tensors} live=${m[dev].live} bytes=${m[dev].bytes}`;

t.test('memory() is flat across 100 training steps inside tidy and returns to baseline', async (t) => {
  const initial = memory();
  const rng = new Rng(3);
  const model = new Net(new Generator(11));
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const ema = new EMA(model, 0.999);
  const withModel = memory();

  const step = (): number => tidy(() => {
    opt.zeroGrad();
    const idx = tensor(rng.ints(B * T, V), [B, T]);
    const tgt = tensor(rng.ints(B * T, V), [B, T]);
    const loss = crossEntropy(model.forward(idx), tgt);
    backward(loss);
    clipGradNorm(model.parameters(), 0.5);
    opt.step();
    ema.update();
    return loss.item();
  });

  const losses = [step()];
  const steady = memory();
  // After step 1: one gradient and two AdamW moments per parameter, nothing else.
  const nParams = model.parameters().length;
  t.equal(steady.tensors - withModel.tensors, 3 * nParams, `step 1 adds grads + moments only (${fmt(steady)})`);
  t.equal(steady[dev].bytes - withModel[dev].bytes, 3 * 4 * model.numParameters(), 'their bytes: 3 x 4 x parameters');
  let growth = 0;
  let firstBad = '';
  let peak2 = 0;
  for (let i = 2; i <= 100; i++) {
    losses.push(step());
    const m = memory();
    if (i === 2) peak2 = m[dev].peak;
    if (m.tensors !== steady.tensors || m[dev].live !== steady[dev].live || m[dev].bytes !== steady[dev].bytes) {
      growth++;
      if (!firstBad) firstBad = `step ${i}: ${fmt(m)}`;
    }
  }
  const end = memory();
  t.equal(growth, 0, `no change across steps 2..100 (steady ${fmt(steady)}${firstBad ? `; first change at ${firstBad}` : ''})`);
  t.equal(end.tensors, steady.tensors, `tensors after step 100 = after step 1 (${end.tensors})`);
  t.equal(end[dev].live, steady[dev].live, `native storages after step 100 = after step 1 (${end[dev].live})`);
  t.equal(end[dev].bytes, steady[dev].bytes, `native bytes after step 100 = after step 1 (${end[dev].bytes})`);
  t.equal(end[dev].peak, peak2, `peak native bytes do not grow after step 2 (${peak2}: steady + one step's temporaries)`);
  t.ok(losses.every(Number.isFinite), `losses finite (first ${losses[0].toFixed(3)}, last ${losses[99].toFixed(3)})`);

  // A step that fails midway (a bad target index in the loss) frees what it had made.
  t.throws(() => tidy(() => {
    const out = model.forward(tensor(rng.ints(B * T, V), [B, T]));
    return crossEntropy(out, tensor(new Int32Array(B * T).fill(V), [B, T]));
  }), RangeError, 'a failing step throws');
  const afterThrow = memory();
  t.equal(afterThrow.tensors, steady.tensors, 'a failing step leaves no tensors');
  t.equal(afterThrow[dev].bytes, steady[dev].bytes, 'a failing step leaves no native bytes');

  opt.dispose();
  ema.dispose();
  model.dispose();
  const final = memory();
  t.comment(`initial ${fmt(initial)}; with model ${fmt(withModel)}; steady ${fmt(steady)}; final ${fmt(final)}`);
  t.equal(final.tensors, initial.tensors, 'tensors back to the initial baseline');
  t.equal(final[dev].live, initial[dev].live, 'native storages back to the initial baseline');
  t.equal(final[dev].bytes, initial[dev].bytes, 'native bytes back to the initial baseline');
});
