// Optimisation: AdamW (PyTorch semantics, decoupled weight decay, per-group settings), global
// gradient-norm clipping, an exponential moving average of parameters, and a cosine learning-rate
// schedule with linear warm-up. Updates run in place through native kernels under noGrad; optimiser
// state (moments, EMA copies) lives in kept native tensors freed by dispose().
import { keep, noGrad } from '../tensor/engine.js';
import { native, ScalarOp } from '../tensor/native.js';
import { Tensor } from '../tensor/tensor.js';
import { empty, zeros } from '../tensor/create.js';
import { check } from '../tensor/kernel.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';
import type { Module } from './module.js';

export interface AdamWOptions { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }
/** A parameter group; unset fields take the optimiser's defaults. */
export interface ParamGroup { params: Tensor[]; lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number }
export interface ResolvedGroup { params: Tensor[]; lr: number; betas: [number, number]; eps: number; weightDecay: number }

interface Slot { step: number; m: Tensor; v: Tensor }

/** Serialisable optimiser state: moments per parameter index (in group order), null if never stepped. */
export interface AdamWState {
  step: number;
  groups: { lr: number; betas: [number, number]; eps: number; weightDecay: number }[];
  params: ({ step: number; m: Float32Array; v: Float32Array } | null)[];
}

function checkParam(op: string, p: Tensor): void {
  p.assertLive();
  if (!p.requiresGrad) throw new Error(`dd2: ${op}: ${p.describe()} does not require grad (not a parameter)`);
  if (p.dtype !== 'float32' || !p.isDense()) throw new TypeError(`dd2: ${op}: ${p.describe()} must be a dense float32 tensor`);
}

function checkGrad(op: string, p: Tensor, g: Tensor): void {
  g.assertLive();
  if (!shapeEq(g.shape, p.shape) || !g.isDense() || g.dtype !== 'float32' || g.device !== p.device) {
    throw new RangeError(`dd2: ${op}: gradient ${g.describe()} does not match parameter ${p.describe()}`);
  }
}

export class AdamW {
  readonly groups: ResolvedGroup[];
  /** number of step() calls */
  stepCount = 0;
  private readonly slots = new Map<Tensor, Slot>();

  constructor(params: Tensor[] | ParamGroup[], opts: AdamWOptions) {
    const betas = opts.betas ?? [0.9, 0.999];
    const raw: ParamGroup[] = params.length && !(params[0] instanceof Tensor) ? params as ParamGroup[]
      : [{ params: params as Tensor[] }];
    const seen = new Set<Tensor>();
    this.groups = raw.map((g) => {
      const r: ResolvedGroup = {
        params: [...g.params], lr: g.lr ?? opts.lr, betas: g.betas ?? betas, eps: g.eps ?? opts.eps ?? 1e-8,
        weightDecay: g.weightDecay ?? opts.weightDecay ?? 0.01,
      };
      AdamW.validate(r);
      for (const p of r.params) {
        checkParam('AdamW', p);
        if (seen.has(p)) throw new Error(`dd2: AdamW: parameter ${p.describe()} appears more than once`);
        seen.add(p);
      }
      return r;
    });
  }

  private static validate(g: ResolvedGroup): void {
    const [b1, b2] = g.betas;
    if (!(g.lr >= 0 && Number.isFinite(g.lr))) throw new RangeError(`dd2: AdamW: lr must be finite and >= 0, got ${g.lr}`);
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new RangeError(`dd2: AdamW: betas must be in [0, 1), got [${b1}, ${b2}]`);
    if (!(g.eps >= 0)) throw new RangeError(`dd2: AdamW: eps must be >= 0, got ${g.eps}`);
    if (!Number.isFinite(g.weightDecay)) throw new RangeError(`dd2: AdamW: weightDecay must be finite, got ${g.weightDecay}`);
  }

  /** All parameters in group order (the indexing of stateDict). */
  params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Sets the learning rate of every group (for schedules). */
  setLr(lr: number): void {
    for (const g of this.groups) { g.lr = lr; AdamW.validate(g); }
  }

  /** One update of every parameter that has a gradient; parameters without one are skipped (their
   *  moments and per-parameter step count are left unchanged, as in PyTorch). */
  step(): void {
    this.stepCount++;
    noGrad(() => {
      for (const grp of this.groups) {
        const [b1, b2] = grp.betas;
        for (const p of grp.params) {
          const g = p.grad;
          if (!g) continue;
          checkParam('AdamW.step', p);
          checkGrad('AdamW.step', p, g);
          check('AdamW.step', ['adamw_step'], p, g);
          let s = this.slots.get(p);
          if (!s) {
            s = { step: 0, m: keep(zeros(p.shape, { device: p.device })), v: keep(zeros(p.shape, { device: p.device })) };
            this.slots.set(p, s);
          }
          s.step++;
          native.adamw_step(p.id, g.id, s.m.id, s.v.id, p.size, grp.lr, b1, b2, grp.eps, grp.weightDecay,
            1 - b1 ** s.step, 1 - b2 ** s.step);
        }
      }
    });
  }

  /** Clears the gradients of all parameters. */
  zeroGrad(): void {
    for (const p of this.params()) { p.grad?.dispose(); p.grad = null; }
  }

  stateDict(): AdamWState {
    return {
      step: this.stepCount,
      groups: this.groups.map((g) => ({ lr: g.lr, betas: [...g.betas] as [number, number], eps: g.eps, weightDecay: g.weightDecay })),
      params: this.params().map((p) => {
        const s = this.slots.get(p);
        return s ? { step: s.step, m: s.m.toFloat32Array(), v: s.v.toFloat32Array() } : null;
      }),
    };
  }

  /** Restores a stateDict() taken from an optimiser over parameters of the same shapes and order. */
  loadStateDict(st: AdamWState): void {
    const ps = this.params();
    if (st.params.length !== ps.length || st.groups.length !== this.groups.length) {
      throw new RangeError(`dd2: AdamW.loadStateDict: state has ${st.params.length} parameters in ${st.groups.length} ` +
        `groups, optimiser has ${ps.length} in ${this.groups.length}`);
    }
    st.params.forEach((e, i) => {
      if (e && (e.m.length !== ps[i].size || e.v.length !== ps[i].size)) {
        throw new RangeError(`dd2: AdamW.loadStateDict: moments of parameter ${i} have ${e.m.length} values, ` +
          `parameter ${ps[i].describe()} has ${ps[i].size}`);
      }
    });
    this.disposeSlots();
    this.stepCount = st.step;
    st.groups.forEach((g, i) => {
      Object.assign(this.groups[i], { lr: g.lr, betas: [...g.betas], eps: g.eps, weightDecay: g.weightDecay });
    });
    st.params.forEach((e, i) => {
      if (!e) return;
      const p = ps[i];
      const m = keep(empty(p.shape, { device: p.device })), v = keep(empty(p.shape, { device: p.device }));
      if (p.size) { native.storage_write(m.storage.id, 0, e.m); native.storage_write(v.storage.id, 0, e.v); }
      this.slots.set(p, { step: e.step, m, v });
    });
  }

  private disposeSlots(): void {
    for (const s of this.slots.values()) { s.m.dispose(); s.v.dispose(); }
    this.slots.clear();
  }

  /** Frees the moment tensors (not the parameters). */
  dispose(): void {
    this.disposeSlots();
  }
}

export interface ClipOptions { /** throw if the norm is NaN or infinite (default false: return it, scale nothing) */ errorIfNonfinite?: boolean }

/**
 * Global L2 norm of all gradients (sum of squares accumulated in float64), and if it exceeds maxNorm,
 * scales every gradient in place by maxNorm / (norm + 1e-6) (PyTorch's clip_grad_norm_). Parameters
 * without a gradient are ignored. A non-finite norm leaves the gradients untouched.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipOptions = {}): number {
  if (!(maxNorm > 0)) throw new RangeError(`dd2: clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const grads: Tensor[] = [];
  for (const p of params) if (p.grad) { checkGrad('clipGradNorm', p, p.grad); grads.push(p.grad); }
  let ss = 0;
  for (const g of grads) {
    check('clipGradNorm', [], g);   // sum_squares is a plain export (no capability entry)
    ss += native.sum_squares(g.id, g.size);
  }
  const norm = Math.sqrt(ss);
  if (!Number.isFinite(norm)) {
    if (opts.errorIfNonfinite) throw new RangeError(`dd2: clipGradNorm: the total gradient norm is ${norm}`);
    return norm;
  }
  if (norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const g of grads) native.scalar_forward(ScalarOp.mul, g.id, g.id, scale, g.size);
  }
  return norm;
}

/** Exponential moving average of parameters: shadow = decay * shadow + (1 - decay) * param. */
export class EMA {
  readonly params: Tensor[];
  readonly shadow: Tensor[];
  updates = 0;

  constructor(params: Module | Tensor[], public decay: number) {
    if (!(decay >= 0 && decay <= 1)) throw new RangeError(`dd2: EMA: decay must be in [0, 1], got ${decay}`);
    this.params = Array.isArray(params) ? [...params] : params.parameters();
    this.shadow = this.params.map((p) => {
      if (p.dtype !== 'float32' || !p.isDense()) throw new TypeError(`dd2: EMA: ${p.describe()} must be a dense float32 tensor`);
      const s = keep(empty(p.shape, { device: p.device }));
      s.name = p.name ? `ema.${p.name}` : 'ema';
      if (p.size) native.storage_copy(s.storage.id, 0, p.id, 0, p.size * 4);
      return s;
    });
  }

  /** One averaging step (decay may be overridden, e.g. for an EMA warm-up). */
  update(decay = this.decay): void {
    if (!(decay >= 0 && decay <= 1)) throw new RangeError(`dd2: EMA.update: decay must be in [0, 1], got ${decay}`);
    this.updates++;
    this.params.forEach((p, i) => {
      check('EMA.update', ['ema_update'], p, this.shadow[i]);
      native.ema_update(this.shadow[i].id, p.id, p.size, decay);
    });
  }

  private targets(to: Module | Tensor[] | undefined): Tensor[] {
    const ts = to === undefined ? this.params : Array.isArray(to) ? to : to.parameters();
    if (ts.length !== this.shadow.length) {
      throw new RangeError(`dd2: EMA: target has ${ts.length} parameters, the average has ${this.shadow.length}`);
    }
    ts.forEach((t, i) => {
      t.assertLive();
      if (!shapeEq(t.shape, this.shadow[i].shape) || !t.isDense()) {
        throw new RangeError(`dd2: EMA: parameter ${i} ${t.describe()} does not match the average ${fmtShape(this.shadow[i].shape)}`);
      }
    });
    return ts;
  }

  /** Copies the averaged values into a module's (or a list's) parameters; default: the tracked ones. */
  copyTo(to?: Module | Tensor[]): void {
    const ts = this.targets(to);
    ts.forEach((t, i) => { if (t.size) native.storage_copy(t.storage.id, 0, this.shadow[i].id, 0, t.size * 4); });
  }

  /** Exchanges the averaged and the live values (call again to swap back), e.g. around evaluation. */
  swap(to?: Module | Tensor[]): void {
    const ts = this.targets(to);
    ts.forEach((t, i) => {
      if (!t.size) return;
      const tmp = empty(t.shape, { device: t.device });
      const s = this.shadow[i], bytes = t.size * 4;
      native.storage_copy(tmp.storage.id, 0, t.id, 0, bytes);
      native.storage_copy(t.storage.id, 0, s.id, 0, bytes);
      native.storage_copy(s.storage.id, 0, tmp.id, 0, bytes);
      tmp.dispose();
    });
  }

  dispose(): void {
    for (const s of this.shadow) s.dispose();
  }
}

export interface CosineOptions { warmup: number; total: number; base: number; min?: number }

/**
 * lr(step) for step = 0, 1, ...: linear warm-up base·(step+1)/warmup over the first `warmup` steps,
 * then a half cosine from base down to min, reached at step `total` and held afterwards.
 */
export function cosineSchedule(o: CosineOptions): (step: number) => number {
  const min = o.min ?? 0;
  if (!(o.warmup >= 0 && o.total >= o.warmup && o.base >= min && min >= 0)) {
    throw new RangeError(`dd2: cosineSchedule: need 0 <= warmup <= total and base >= min >= 0, got ${JSON.stringify(o)}`);
  }
  return (step: number): number => {
    if (step < o.warmup) return (o.base * (step + 1)) / o.warmup;
    const span = o.total - o.warmup;
    const prog = span > 0 ? Math.min(1, (step - o.warmup) / span) : 1;
    return min + (o.base - min) * 0.5 * (1 + Math.cos(Math.PI * prog));
  };
}
