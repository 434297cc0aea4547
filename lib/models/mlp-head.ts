// The DD2 MLP head: MAR's SimpleMLPAdaLN (models/diffloss.py) re-expressed over the dd2 ops, with MAR's
// parameter names and initialisation. Per token row it maps a noisy token xt, its time t and the
// backbone feature f of its position to a velocity:
//   x = input_proj(xt); y = time_embed(sinusoid(1000·t)) + cond_embed(f)
//   depth × [ (shift, scale, gate) = adaLN_modulation(y); x += gate ⊙ mlp(modulate(in_ln(x), shift, scale)) ]
//   (shift, scale) = final_layer.adaLN_modulation(y); v = final_layer.linear(modulate(norm_final(x), shift, scale))
// with modulate(x, shift, scale) = x ⊙ (1 + scale) + shift and adaLN_modulation = Linear(SiLU(·)). As in MAR,
// in_ln has an affine weight/bias while norm_final has none (both eps 1e-6); every adaLN modulation linear and
// the output linear start at zero, so a fresh head outputs v = 0.
// Letters: M rows (tokens), C token dim, E condition (backbone) width, W head width, Fq frequency dim.
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { noGrad } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import type { Generator } from '../tensor/random.js';
import type { Device } from '../tensor/dtype.js';
import { add, addScalar, cos, mul, mulScalar, silu, sin } from '../tensor/ops/elementwise.js';
import { concat, reshape, slice } from '../tensor/ops/shape.js';
import { Module, ModuleList } from '../nn/module.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { normal, uniform } from '../nn/init.js';

export interface MLPHeadConfig {
  /** C: dimension of a token (codebook vector) */
  tokenDim: number;
  /** E: width of the condition (the backbone's features) */
  condDim: number;
  /** W: width of the head (MAR: 1024) */
  width: number;
  /** number of residual blocks (MAR: 3) */
  depth: number;
  /** Fq: size of the sinusoidal time embedding (MAR: 256) */
  freqDim: number;
}

/** MAR's LayerNorm epsilon. */
const LN_EPS = 1e-6;

function validate(cfg: MLPHeadConfig): void {
  for (const k of ['tokenDim', 'condDim', 'width', 'depth', 'freqDim'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new RangeError(`dd2: MLPHead: ${k} must be a positive integer, got ${cfg[k]}`);
  }
}

/** Copies host values into a parameter (initialisation). */
function fill(p: Tensor, values: Tensor | Float32Array): void {
  noGrad(() => {
    const src = values instanceof Float32Array ? tensor(values, p.shape, { device: p.device }) : values;
    if (p.size) native.storage_copy(p.storage.id, p.offset * 4, src.id, 0, p.size * 4);
    src.dispose();
  });
}

/** Xavier-uniform weight and zero bias (MAR's _basic_init for every nn.Linear). */
function xavier(l: Linear, gen: Generator): void {
  const b = Math.sqrt(6 / (l.inFeatures + l.outFeatures));
  fill(l.weight, uniform(l.weight.shape, -b, b, gen));
  if (l.bias) fill(l.bias, new Float32Array(l.bias.size));
}

function zero(l: Linear): void {
  fill(l.weight, new Float32Array(l.weight.size));
  if (l.bias) fill(l.bias, new Float32Array(l.bias.size));
}

/** x ⊙ (1 + scale) + shift, all (M, W). */
function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  return add(mul(x, addScalar(scale, 1)), shift);
}

/** Column block i of width W of a (M, k·W) tensor. */
function chunk(x: Tensor, i: number, W: number): Tensor {
  return slice(x, 1, i * W, (i + 1) * W);
}

/** adaLN_modulation = Sequential(SiLU, Linear): only index 1 has parameters (MAR's names). */
class AdaLNModulation extends Module {
  readonly lin: Linear;
  constructor(width: number, mult: number, gen: Generator) {
    super();
    this.lin = this.registerModule('1', new Linear(width, mult * width, { gen }));
  }
  forward(y: Tensor): Tensor {
    return this.lin.forward(silu(y));
  }
}

/** Sequential(Linear, SiLU, Linear) with parameters at indices 0 and 2 (MAR's names). */
export class TwoLayerMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(inDim: number, hidden: number, outDim: number, gen: Generator) {
    super();
    this.fc1 = this.registerModule('0', new Linear(inDim, hidden, { gen }));
    this.fc2 = this.registerModule('2', new Linear(hidden, outDim, { gen }));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(silu(this.fc1.forward(x)));
  }
}

/** MAR's TimestepEmbedder: sinusoid(t) (Fq) -> mlp (W). */
class TimestepEmbedder extends Module {
  readonly mlp: TwoLayerMLP;
  constructor(width: number, readonly freqDim: number, gen: Generator) {
    super();
    this.mlp = this.registerModule('mlp', new TwoLayerMLP(freqDim, width, width, gen));
  }
}

class ResBlock extends Module {
  readonly in_ln: LayerNorm;
  readonly mlp: TwoLayerMLP;
  readonly adaLN_modulation: AdaLNModulation;
  constructor(readonly width: number, gen: Generator) {
    super();
    this.in_ln = this.registerModule('in_ln', new LayerNorm(width, { eps: LN_EPS }));
    this.mlp = this.registerModule('mlp', new TwoLayerMLP(width, width, width, gen));
    this.adaLN_modulation = this.registerModule('adaLN_modulation', new AdaLNModulation(width, 3, gen));
  }
  /** x, y (M, W) -> x + gate ⊙ mlp(modulate(in_ln(x), shift, scale)) */
  forward(x: Tensor, y: Tensor): Tensor {
    const W = this.width, m = this.adaLN_modulation.forward(y);                   // (M, 3W)
    const h = this.mlp.forward(modulate(this.in_ln.forward(x), chunk(m, 0, W), chunk(m, 1, W)));
    return add(x, mul(chunk(m, 2, W), h));
  }
}

class FinalLayer extends Module {
  readonly norm_final: LayerNorm;
  readonly linear: Linear;
  readonly adaLN_modulation: AdaLNModulation;
  constructor(readonly width: number, outDim: number, gen: Generator) {
    super();
    this.norm_final = this.registerModule('norm_final', new LayerNorm(width, { eps: LN_EPS, affine: false }));
    this.linear = this.registerModule('linear', new Linear(width, outDim, { gen }));
    this.adaLN_modulation = this.registerModule('adaLN_modulation', new AdaLNModulation(width, 2, gen));
  }
  forward(x: Tensor, y: Tensor): Tensor {
    const W = this.width, m = this.adaLN_modulation.forward(y);                   // (M, 2W)
    return this.linear.forward(modulate(this.norm_final.forward(x), chunk(m, 0, W), chunk(m, 1, W)));
  }
}

/** Frequencies exp(−ln(10000)·i/half), i < half = ⌊Fq/2⌋ (GLIDE / MAR timestep_embedding). */
export function timestepFrequencies(freqDim: number): Float32Array {
  const half = Math.floor(freqDim / 2);
  return Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
}

export class MLPHead extends Module {
  readonly cfg: MLPHeadConfig;
  readonly time_embed: TimestepEmbedder;
  readonly cond_embed: Linear;
  readonly input_proj: Linear;
  readonly res_blocks: ModuleList<ResBlock>;
  readonly final_layer: FinalLayer;
  private readonly freqs: Tensor;

  /** MAR's initialize_weights: Xavier-uniform linears with zero biases, N(0, 0.02²) time-MLP weights, zero
   *  adaLN modulations and output linear. Registration order gives MAR's state-dict order. */
  constructor(cfg: MLPHeadConfig, gen: Generator) {
    super();
    validate(cfg);
    this.cfg = { ...cfg };
    const { tokenDim: C, condDim: E, width: W, depth, freqDim } = cfg;
    this.time_embed = this.registerModule('time_embed', new TimestepEmbedder(W, freqDim, gen));
    this.cond_embed = this.registerModule('cond_embed', new Linear(E, W, { gen }));
    this.input_proj = this.registerModule('input_proj', new Linear(C, W, { gen }));
    this.res_blocks = this.registerModule('res_blocks', new ModuleList(Array.from({ length: depth }, () => new ResBlock(W, gen))));
    this.final_layer = this.registerModule('final_layer', new FinalLayer(W, C, gen));
    for (const [, m] of this.namedModules()) if (m instanceof Linear) xavier(m, gen);
    for (const l of [this.time_embed.mlp.fc1, this.time_embed.mlp.fc2]) fill(l.weight, normal(l.weight.shape, 0.02, 0, gen));
    for (const b of this.res_blocks) zero(b.adaLN_modulation.lin);
    zero(this.final_layer.adaLN_modulation.lin);
    zero(this.final_layer.linear);
    this.freqs = this.registerBuffer('freqs', tensor(timestepFrequencies(freqDim), [1, Math.floor(freqDim / 2)]), false);
  }

  get device(): Device {
    return this.input_proj.weight.device;
  }

  /** sinusoid(1000·t): t (M) -> [cos(args), sin(args) (, 0 if Fq is odd)] (M, Fq), args = 1000·t·freqs. */
  timeEmbedding(t: Tensor): Tensor {
    const M = t.size, Fq = this.cfg.freqDim;
    const args = mul(reshape(mulScalar(t, 1000), [M, 1]), this.freqs);                // (M, Fq/2)
    const parts = [cos(args), sin(args)];
    if (Fq % 2) parts.push(tensor(new Float32Array(M), [M, 1], { device: t.device }));
    return concat(parts, 1);
  }

  /** velocity (M, C) from noisy tokens xt (M, C), times t (M) in [0, 1], conditions f (M, E) */
  forward(xt: Tensor, t: Tensor, f: Tensor): Tensor {
    const { tokenDim: C, condDim: E } = this.cfg;
    const M = xt.shape[0];
    if (xt.rank !== 2 || xt.shape[1] !== C || t.size !== M || f.rank !== 2 || f.shape[0] !== M || f.shape[1] !== E) {
      throw new RangeError(`dd2: MLPHead: xt ${xt.describe()}, t ${t.describe()}, f ${f.describe()} must be (M, ${C}), (M), (M, ${E})`);
    }
    let x = this.input_proj.forward(xt);                                             // (M, W)
    const y = add(this.time_embed.mlp.forward(this.timeEmbedding(t)), this.cond_embed.forward(f));
    for (const blk of this.res_blocks) x = blk.forward(x, y);
    return this.final_layer.forward(x, y);                                           // (M, C)
  }
}
