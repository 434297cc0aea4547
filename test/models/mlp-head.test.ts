// The DD2 MLP head (lib/models/mlp-head.ts, MAR's SimpleMLPAdaLN): parameter names, shapes and order as in
// MAR's state dict; MAR's initialisation (Xavier linears, N(0, 0.02²) time MLP, zero adaLN modulations and
// output, so a fresh head outputs exactly 0); the forward pass of a randomised head against a literal float64
// port of SimpleMLPAdaLN.forward; gradients for the inputs (checkOp: float64 central differences of that port)
// and for every parameter tensor (the same finite differences on sampled coordinates).
// Letters: M rows, C token dim, E condition width, W head width, Fq frequency dim.
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { backward } from '../../lib/autograd/tape.js';
import { MLPHead, timestepFrequencies, type MLPHeadConfig } from '../../lib/models/mlp-head.js';
import { checkOp } from '../harness/gradcheck.js';
import { expectClose, Rng } from '../harness/compare.js';

const base = memory();

type P = Map<string, Float64Array>;

// ---- float64 port of MAR's SimpleMLPAdaLN.forward --------------------------------------------------------
function linear(x: Float64Array, M: number, inD: number, W: Float64Array, b: Float64Array | undefined, outD: number): Float64Array {
  const y = new Float64Array(M * outD);
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < outD; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inD; i++) s += x[m * inD + i] * W[o * inD + i];
      y[m * outD + o] = s;
    }
  }
  return y;
}
const silu = (x: Float64Array): Float64Array => x.map((v) => v / (1 + Math.exp(-v)));
function layerNorm(x: Float64Array, M: number, D: number, w?: Float64Array, b?: Float64Array): Float64Array {
  const y = new Float64Array(M * D);
  for (let m = 0; m < M; m++) {
    let mu = 0, v = 0;
    for (let i = 0; i < D; i++) mu += x[m * D + i];
    mu /= D;
    for (let i = 0; i < D; i++) v += (x[m * D + i] - mu) ** 2;
    const r = 1 / Math.sqrt(v / D + 1e-6);
    for (let i = 0; i < D; i++) y[m * D + i] = (x[m * D + i] - mu) * r * (w ? w[i] : 1) + (b ? b[i] : 0);
  }
  return y;
}
/** columns [k·W, (k+1)·W) of a (M, n·W) matrix */
function cols(x: Float64Array, M: number, n: number, W: number, k: number): Float64Array {
  const y = new Float64Array(M * W);
  for (let m = 0; m < M; m++) for (let i = 0; i < W; i++) y[m * W + i] = x[m * n * W + k * W + i];
  return y;
}
const modulate = (x: Float64Array, shift: Float64Array, scale: Float64Array): Float64Array => x.map((v, i) => v * (1 + scale[i]) + shift[i]);

/** t enters as float32 arithmetic does (args = fl(fl(1000 t) · fl(freq))) so that the reference sees the
 *  same angles as the kernels; cos/sin of them in float64. */
function refForward(cfg: MLPHeadConfig, p: P, xt: Float64Array, tt: Float64Array, f: Float64Array): Float64Array {
  const { tokenDim: C, condDim: E, width: W, depth, freqDim: Fq } = cfg;
  const M = tt.length, half = Math.floor(Fq / 2), freqs = timestepFrequencies(Fq);
  const emb = new Float64Array(M * Fq);
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(Math.fround(1000 * tt[m]) * freqs[i]);
      emb[m * Fq + i] = Math.cos(a);
      emb[m * Fq + half + i] = Math.sin(a);
    }
  }
  const g = (k: string): Float64Array => p.get(k)!;
  const temb = linear(silu(linear(emb, M, Fq, g('time_embed.mlp.0.weight'), g('time_embed.mlp.0.bias'), W)), M, W,
    g('time_embed.mlp.2.weight'), g('time_embed.mlp.2.bias'), W);
  const cemb = linear(f, M, E, g('cond_embed.weight'), g('cond_embed.bias'), W);
  const y = temb.map((v, i) => v + cemb[i]);
  const sy = silu(y);
  let x = linear(xt, M, C, g('input_proj.weight'), g('input_proj.bias'), W);
  for (let d = 0; d < depth; d++) {
    const q = `res_blocks.${d}.`;
    const mod = linear(sy, M, W, g(`${q}adaLN_modulation.1.weight`), g(`${q}adaLN_modulation.1.bias`), 3 * W);
    const h0 = modulate(layerNorm(x, M, W, g(`${q}in_ln.weight`), g(`${q}in_ln.bias`)), cols(mod, M, 3, W, 0), cols(mod, M, 3, W, 1));
    const h = linear(silu(linear(h0, M, W, g(`${q}mlp.0.weight`), g(`${q}mlp.0.bias`), W)), M, W, g(`${q}mlp.2.weight`), g(`${q}mlp.2.bias`), W);
    const gate = cols(mod, M, 3, W, 2);
    x = x.map((v, i) => v + gate[i] * h[i]);
  }
  const mod = linear(sy, M, W, g('final_layer.adaLN_modulation.1.weight'), g('final_layer.adaLN_modulation.1.bias'), 2 * W);
  const z = modulate(layerNorm(x, M, W), cols(mod, M, 2, W, 0), cols(mod, M, 2, W, 1));
  return linear(z, M, W, g('final_layer.linear.weight'), g('final_layer.linear.bias'), C);
}
// -----------------------------------------------------------------------------------------------------------

/** Replaces every parameter by N(0, std²) values (norm weights near 1) and returns them as float64. */
function randomize(m: MLPHead, seed: number, std = 0.4): P {
  const rng = new Rng(seed);
  const st = new Map<string, Float32Array>();
  for (const [k, v] of m.stateDict()) st.set(k, k.endsWith('in_ln.weight') ? v.map(() => 1 + 0.3 * (rng.next() - 0.5)) : rng.normal(v.length, std));
  m.loadStateDict(st);
  return new Map([...st].map(([k, v]) => [k, Float64Array.from(v)]));
}

t.test('names, shapes and order follow MAR SimpleMLPAdaLN; MAR initialisation; zero output at init', async (t) => {
  const cfg: MLPHeadConfig = { tokenDim: 3, condDim: 5, width: 16, depth: 2, freqDim: 8 };
  const m = new MLPHead(cfg, new Generator(1));
  const W = 16;
  const want: [string, number[]][] = [
    ['time_embed.mlp.0.weight', [W, 8]], ['time_embed.mlp.0.bias', [W]], ['time_embed.mlp.2.weight', [W, W]], ['time_embed.mlp.2.bias', [W]],
    ['cond_embed.weight', [W, 5]], ['cond_embed.bias', [W]], ['input_proj.weight', [W, 3]], ['input_proj.bias', [W]],
  ];
  for (const i of [0, 1]) {
    const q = `res_blocks.${i}.`;
    want.push([`${q}in_ln.weight`, [W]], [`${q}in_ln.bias`, [W]], [`${q}mlp.0.weight`, [W, W]], [`${q}mlp.0.bias`, [W]],
      [`${q}mlp.2.weight`, [W, W]], [`${q}mlp.2.bias`, [W]], [`${q}adaLN_modulation.1.weight`, [3 * W, W]], [`${q}adaLN_modulation.1.bias`, [3 * W]]);
  }
  want.push(['final_layer.linear.weight', [3, W]], ['final_layer.linear.bias', [3]],
    ['final_layer.adaLN_modulation.1.weight', [2 * W, W]], ['final_layer.adaLN_modulation.1.bias', [2 * W]]);
  t.same([...m.stateShapes()], want, 'state dict keys, order and shapes as PyTorch lists them for SimpleMLPAdaLN (norm_final has no affine)');

  const sd = m.stateDict();
  const zeroKeys = [...sd.keys()].filter((k) => k.includes('adaLN_modulation') || k.startsWith('final_layer.linear') || k.endsWith('.bias') && !k.includes('in_ln'));
  t.ok(zeroKeys.every((k) => sd.get(k)!.every((v) => v === 0)), `zero: adaLN modulations, output linear, linear biases (${zeroKeys.length} tensors)`);
  t.ok(sd.get('res_blocks.0.in_ln.weight')!.every((v) => v === 1) && sd.get('res_blocks.0.in_ln.bias')!.every((v) => v === 0), 'in_ln starts at weight 1, bias 0');
  const xb = Math.sqrt(6 / (16 + 16)), w = sd.get('res_blocks.1.mlp.0.weight')!;
  const maxAbs = Math.max(...w.map(Math.abs));
  t.ok(maxAbs <= xb && maxAbs > 0.8 * xb, `Xavier-uniform: max |w| ${maxAbs.toFixed(4)} within bound ${xb.toFixed(4)}`);
  const te = sd.get('time_embed.mlp.2.weight')!, std = Math.sqrt(te.reduce((s, v) => s + v * v, 0) / te.length);
  t.ok(Math.abs(std - 0.02) < 0.004, `time MLP weights ~ N(0, 0.02²): std ${std.toFixed(4)}`);

  const rng = new Rng(5);
  tidy(() => {
    const v = m.forward(tensor(rng.normal(7 * 3), [7, 3]), tensor(rng.uniform(7, 0, 1), [7]), tensor(rng.normal(7 * 5), [7, 5]));
    t.same(v.shape, [7, 3], 'v is (M, C)');
    t.ok(v.toFloat32Array().every((x) => x === 0), 'a fresh head outputs exactly 0 (zero-initialised modulation and output)');
  });
  t.throws(() => tidy(() => m.forward(tensor(rng.normal(6), [2, 3]), tensor(rng.uniform(3), [3]), tensor(rng.normal(10), [2, 5]))),
    /must be \(M, 3\), \(M\), \(M, 5\)/, 'mismatched row counts are refused');
  t.throws(() => new MLPHead({ ...cfg, depth: 0 }, new Generator(0)), /depth must be a positive integer/);
  m.dispose();
});

t.test('forward equals a float64 port of SimpleMLPAdaLN; gradients match finite differences', async (t) => {
  // odd Fq exercises MAR's zero-padding column
  const cfg: MLPHeadConfig = { tokenDim: 3, condDim: 4, width: 8, depth: 2, freqDim: 7 };
  const M = 5;
  const m = new MLPHead(cfg, new Generator(2));
  const p = randomize(m, 11);
  const rng = new Rng(3);
  const xt = rng.normal(M * 3), tt = rng.uniform(M, 0, 1), f = rng.normal(M * 4);
  // Measured (CPU): forward maxAbs ~1e-6; input gradients ~1e-6 of their scale; parameter gradients <= 1.5e-6 absolute.
  checkOp(t, {
    name: 'MLPHead(xt, t, f)',
    inputs: [{ data: xt, shape: [M, 3] }, { data: tt, shape: [M], grad: false }, { data: f, shape: [M, 4] }],
    run: ([a, b, c]) => m.forward(a, b, c),
    ref: ([a, b, c]) => refForward(cfg, p, a, b, c),
    forward: { atol: 4e-6, rtol: 4e-6 },
    backward: { atol: 1e-7, rtol: 1e-5 },
  });

  // Parameter gradients of L = Σ w ⊙ v against central differences of the float64 port.
  const w = new Rng(9).normal(M * 3);
  tidy(() => {
    m.zeroGrad();
    const v = m.forward(tensor(xt, [M, 3]), tensor(tt, [M]), tensor(f, [M, 4]));
    backward(v, tensor(w, [M, 3]));
  });
  const L = (): number => refForward(cfg, p, Float64Array.from(xt), Float64Array.from(tt), Float64Array.from(f))
    .reduce((s, v, i) => s + v * w[i], 0);
  const pick = new Rng(21);
  for (const [name, param] of m.namedParameters()) {
    const g = param.grad ? param.grad.toFloat32Array() : new Float32Array(param.size);
    const vals = p.get(name)!;
    const idx = Array.from({ length: Math.min(6, param.size) }, () => Math.floor(pick.next() * param.size));
    const fd = idx.map((j) => {
      const x0 = vals[j], h = 1e-6 * Math.max(1, Math.abs(x0));
      vals[j] = x0 + h; const lp = L();
      vals[j] = x0 - h; const lm = L();
      vals[j] = x0;
      return (lp - lm) / (2 * h);
    });
    const scale = Math.max(1, ...fd.map(Math.abs));
    expectClose(t, `d/d ${name}`, idx.map((j) => g[j]), fd, { atol: 1e-5 * scale, rtol: 0 });
  }
  m.zeroGrad();
  m.dispose();
});

t.test('no leaked tensors', async (t) => {
  const now = memory();
  t.equal(now.tensors, base.tensors, `live tensors ${now.tensors} == ${base.tensors} at start`);
});
