// DD2's closed-form conditional score (METHOD.md §2.3) and the fused CSD gradient (§5.3).
// Per token i the teacher's next-token distribution p (over the V codes of the codebook) defines the
// noisy mixture p_t(x) = Σ_j p_j N(x; (1 - t) c_j, t² I); its denoiser D = E[c | x] = Σ_j w_j c_j with
// w = softmax_j(log p_j - ‖x - (1 - t) c_j‖² / (2t²)) gives the score s = -(x - (1 - t) D)/t² and the
// velocity v = (x - D)/t. The fused kernels never store the (N, V) weights: each token runs an online
// softmax over its entries (native/cpu/cond-score.cpp, native/cuda/cond-score.cu).
// Letters: N tokens, C code dim (<= 64 for the fused kernels), V codebook size, K top-k entries.
// Probabilities: dense P (N, V), or sparse top-k idx int32 (N, K) with val (N, K); zero probabilities
// are excluded (padding). t must lie in (0, 1]; clamp it (e.g. >= 1e-3) before calling.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape } from '../shape.js';
import { contiguous, reshape } from './shape.js';
import { add, div, log, mul, mulScalar, scalarOp, square, sub } from './elementwise.js';
import { sum } from './reduce.js';
import { matmul } from './matmul.js';
import { softmax } from './softmax.js';
import { embedding } from './index.js';

/** A token's probabilities over the codebook: exactly one of `dense` (N, V) or (`idx` int32, `val`) (N, K). */
export interface MixtureProbs { dense?: Tensor; idx?: Tensor; val?: Tensor }

/** Largest code dim of the fused kernels (kCondScoreMaxC in native/include/dd2/cpu/cond-score.h). */
export const COND_SCORE_MAX_C = 64;

const KERNELS = ['cond_denoise_fwd', 'cond_denoise_vjp'];

interface Plan { N: number; C: number; V: number; K: number; dense: boolean }

function shapeErr(op: string, what: string, t: Tensor, want: string): RangeError {
  return new RangeError(`dd2: ${op}: ${what} must have shape ${want}, got ${fmtShape(t.shape)}`);
}

/** Validates x (N, C), t (N), codebook (V, C) and the probabilities; returns the sizes. */
function plan(op: string, x: Tensor, t: Tensor, codebook: Tensor, p: MixtureProbs, fused: boolean): Plan {
  if (!p || typeof p !== 'object') throw new TypeError(`dd2: ${op}: probabilities must be { dense } or { idx, val }`);
  const hasDense = !!p.dense, hasSparse = !!p.idx || !!p.val;
  if (hasDense === hasSparse) {
    throw new TypeError(`dd2: ${op}: pass exactly one of dense probabilities { dense } or sparse { idx, val } ` +
      `(got ${hasDense ? 'both' : 'neither'})`);
  }
  if (hasSparse && (!p.idx || !p.val)) {
    throw new TypeError(`dd2: ${op}: sparse probabilities need both idx (int32) and val (float32); ` +
      `got only ${p.idx ? 'idx' : 'val'}`);
  }
  expectDtype(op, x, 'float32', 'x');
  expectDtype(op, t, 'float32', 't');
  expectDtype(op, codebook, 'float32', 'codebook');
  if (x.rank !== 2) throw shapeErr(op, 'x', x, '(N, C)');
  const [N, C] = x.shape;
  if (t.rank !== 1 || t.shape[0] !== N) throw shapeErr(op, 't', t, `(${N}) (one time per token of x)`);
  if (codebook.rank !== 2 || codebook.shape[1] !== C) throw shapeErr(op, 'codebook', codebook, `(V, ${C})`);
  const V = codebook.shape[0];
  if (V < 1 || C < 1) throw new RangeError(`dd2: ${op}: empty codebook ${fmtShape(codebook.shape)}`);
  if (fused && C > COND_SCORE_MAX_C) {
    throw new RangeError(`dd2: ${op}: code dim C=${C} exceeds the fused kernels' maximum ${COND_SCORE_MAX_C}`);
  }
  let K = 0;
  if (p.dense) {
    expectDtype(op, p.dense, 'float32', 'dense probabilities');
    if (p.dense.rank !== 2 || p.dense.shape[0] !== N || p.dense.shape[1] !== V) {
      throw shapeErr(op, 'dense probabilities', p.dense, `(N, V) = (${N}, ${V})`);
    }
  } else {
    const idx = p.idx!, val = p.val!;
    expectDtype(op, idx, 'int32', 'sparse idx');
    expectDtype(op, val, 'float32', 'sparse val');
    if (idx.rank !== 2 || idx.shape[0] !== N || idx.shape[1] < 1) throw shapeErr(op, 'sparse idx', idx, `(${N}, K)`);
    K = idx.shape[1];
    if (val.rank !== 2 || val.shape[0] !== N || val.shape[1] !== K) {
      throw shapeErr(op, 'sparse val', val, `(${N}, ${K}) like idx`);
    }
  }
  return { N, C, V, K, dense: !!p.dense };
}

/** Storage ids (-1 when absent) of the probability tensors, made contiguous; temps collects copies. */
function probIds(p: MixtureProbs, temps: Tensor[]): [number, number, number] {
  const id = (x: Tensor | undefined): number => {
    if (!x) return -1;
    const c = contiguous(x);
    if (c !== x) temps.push(c);
    return c.id;
  };
  return [id(p.dense), id(p.idx), id(p.val)];
}

function dense(x: Tensor, temps: Tensor[]): Tensor {
  const c = contiguous(x);
  if (c !== x) temps.push(c);
  return c;
}

/** D (N, C) = E[c | x] under the mixture; x (N, C), t (N), codebook (V, C). Differentiable w.r.t. x only.
 *  With DD2_NO_FUSED=1, runs condDenoiseComposite instead. */
export function condDenoise(x: Tensor, t: Tensor, codebook: Tensor, p: MixtureProbs): Tensor {
  if (process.env.DD2_NO_FUSED === '1') return condDenoiseComposite(x, t, codebook, p);
  const op = 'condDenoise';
  const { N, C, V, K } = plan(op, x, t, codebook, p, true);
  const device = check(op, KERNELS, x, t, codebook, p.dense, p.idx, p.val);
  const temps: Tensor[] = [];
  const xc = dense(x, temps), tc = dense(t, temps), cc = dense(codebook, temps);
  const [P, I, W] = probIds(p, temps);
  const D = empty([N, C], { device }), lse = empty([N], { device });
  temps.push(lse);
  try {
    native.cond_denoise_fwd(D.id, lse.id, xc.id, tc.id, cc.id, P, I, W, N, C, V, K);
  } catch (e) {
    for (const u of [D, ...temps]) u.dispose();
    throw e;
  }
  record(op, [x], D, (g) => {
    const gc = contiguous(g);
    const gx = empty([N, C], { device });
    native.cond_denoise_vjp(gx.id, gc.id, xc.id, tc.id, cc.id, P, I, W, lse.id, D.id, N, C, V, K);
    return [gx];
  });
  if (!D.node) for (const u of temps) u.dispose();
  return D;
}

/** Releases the intermediates of a composed op once `out` is known not to need them for backward. */
function finish(out: Tensor, temps: Tensor[]): Tensor {
  if (!out.node) for (const u of temps) if (u !== out && !u.disposed) u.dispose();
  return out;
}

/** v = (x − D)/t (the flow-matching velocity of the mixture), composed from condDenoise. */
export function condVelocity(x: Tensor, t: Tensor, codebook: Tensor, p: MixtureProbs): Tensor {
  const D = condDenoise(x, t, codebook, p);
  const tc = reshape(t, [t.shape[0], 1]);
  const diff = sub(x, D);
  return finish(div(diff, tc), [D, tc, diff]);
}

/** s = −(x − (1−t)D)/t² = ∇_x log p_t(x), composed from condDenoise. */
export function condScore(x: Tensor, t: Tensor, codebook: Tensor, p: MixtureProbs): Tensor {
  const D = condDenoise(x, t, codebook, p);
  const tc = reshape(t, [t.shape[0], 1]);
  const a = scalarOp(tc, 1, 'rsub');
  const aD = mul(D, a);
  const num = sub(aD, x);
  const t2 = square(tc);
  return finish(div(num, t2), [D, tc, a, aD, num, t2]);
}

export interface CsdGradArgs {
  /** generator output (N, C) */
  x: Tensor;
  /** noisy token (1 − t)·x + t·ε (N, C) */
  xt: Tensor;
  /** time per token (N) */
  t: Tensor;
  /** guidance (fake) denoiser at xt (N, C) */
  dpsi: Tensor;
  codebook: Tensor;
  p: MixtureProbs;
  /** SiD α (default 1) */
  alpha?: number;
  /** multiplies gx and gDpsi (not loss); default 1 */
  scale?: number;
  /** floor of λ = mean_c |x − Dphi| (default 1e-6) */
  lambdaMin?: number;
  /** both denoisers treated as constants (DMD-equivalent gradient); default false */
  detached?: boolean;
}

export interface CsdGrad {
  /** per-token loss u·w/λ (N), not multiplied by scale */
  loss: Tensor;
  /** scale·(−u/λ + (1 − t)·J_phi(xt)ᵀ gDphi) (N, C); detached: scale·(−u/λ) */
  gx: Tensor;
  /** scale·gDpsi (N, C), to back-propagate through Dpsi = xt − t·v_psi(xt) and add (1 − t)·that to gx;
   *  zeros when detached */
  gDpsi: Tensor;
  /** the teacher's denoiser D(xt) (N, C) */
  dphi: Tensor;
}

/**
 * The SiD / CSD loss per token and its gradient w.r.t. the generator output x, fused with the teacher's
 * denoiser Dphi = D(xt) and its VJP (METHOD.md §5.3): u = Dphi − Dpsi, w = (Dphi − x) − α·u,
 * λ = max(mean_c |x − Dphi|, lambdaMin) (a constant), loss = u·w/λ. Plain: records no autograd node
 * (inputs may require grad; they are read as values). All outputs are new tensors.
 */
export function csdGrad(a: CsdGradArgs): CsdGrad {
  const op = 'csdGrad';
  const { x, xt, t, dpsi, codebook, p } = a;
  const alpha = a.alpha ?? 1, scale = a.scale ?? 1, lambdaMin = a.lambdaMin ?? 1e-6, detached = !!a.detached;
  for (const [name, v] of [['alpha', alpha], ['scale', scale], ['lambdaMin', lambdaMin]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`dd2: ${op}: ${name} must be a finite number, got ${v}`);
  }
  if (!(lambdaMin > 0)) throw new RangeError(`dd2: ${op}: lambdaMin must be > 0, got ${lambdaMin}`);
  const { N, C, V, K } = plan(op, x, t, codebook, p, true);
  for (const [name, v] of [['xt', xt], ['dpsi', dpsi]] as const) {
    expectDtype(op, v, 'float32', name);
    if (v.rank !== 2 || v.shape[0] !== N || v.shape[1] !== C) throw shapeErr(op, name, v, `(${N}, ${C}) like x`);
  }
  const device = check(op, ['csd_grad'], x, xt, t, dpsi, codebook, p.dense, p.idx, p.val);
  const temps: Tensor[] = [];
  const ids = [x, xt, t, dpsi].map((v) => dense(v, temps).id);
  const cc = dense(codebook, temps);
  const [P, I, W] = probIds(p, temps);
  const loss = empty([N], { device }), gx = empty([N, C], { device });
  const gDpsi = empty([N, C], { device }), dphi = empty([N, C], { device });
  try {
    native.csd_grad(loss.id, gx.id, gDpsi.id, dphi.id, ids[0], ids[1], ids[2], ids[3], cc.id, P, I, W, N, C, V, K,
      alpha, scale, lambdaMin, detached);
  } catch (e) {
    for (const u of [loss, gx, gDpsi, dphi]) u.dispose();
    throw e;
  } finally {
    for (const u of temps) u.dispose();
  }
  return { loss, gx, gDpsi, dphi };
}

/**
 * The same denoiser from primitive ops with their own autograd (reference for tests, and the path of
 * DD2_NO_FUSED=1): logits log p + (a/t²)·x·cᵀ − (a²/(2t²))·‖c‖² (a = 1 − t; the ‖x‖² term dropped),
 * softmax, weighted sum of codes. Materialises (N, V) (dense) or (N, K, C) (sparse) intermediates.
 * The expanded logits lose precision at small t (they scale like 1/t²): use t >= ~0.01 with it.
 * Differentiable w.r.t. x (and the codebook).
 */
export function condDenoiseComposite(x: Tensor, t: Tensor, codebook: Tensor, p: MixtureProbs): Tensor {
  const op = 'condDenoiseComposite';
  const { N, C, K } = plan(op, x, t, codebook, p, false);
  const tmp: Tensor[] = [];
  const k = <T extends Tensor>(v: T): T => { tmp.push(v); return v; };
  const tc = k(reshape(t, [N, 1]));
  const a = k(scalarOp(tc, 1, 'rsub'));
  const t2 = k(square(tc));
  const k1 = k(div(a, t2));                                    // a/t²      (N, 1)
  const k2 = k(mulScalar(k(mul(k1, a)), 0.5));                 // a²/(2t²)  (N, 1)
  let D: Tensor;
  if (p.dense) {
    const logp = k(log(p.dense));                              // (N, V), -inf where p = 0
    const xc = k(matmul(x, codebook, { transB: true }));       // (N, V)
    const cn = k(reshape(k(sum(k(square(codebook)), -1)), [1, -1]));
    const l = k(sub(k(add(logp, k(mul(k1, xc)))), k(mul(k2, cn))));
    const w = k(softmax(l, -1));
    D = matmul(w, codebook);
  } else {
    const codes = k(embedding(codebook, p.idx!));              // (N, K, C)
    const xk = k(sum(k(mul(codes, k(reshape(x, [N, 1, C])))), -1));   // (N, K)
    const cn = k(sum(k(square(codes)), -1));                   // (N, K)
    const logp = k(log(p.val!));
    const l = k(sub(k(add(logp, k(mul(k1, xk)))), k(mul(k2, cn))));
    const w = k(softmax(l, -1));
    D = sum(k(mul(k(reshape(w, [N, K, 1])), codes)), 1);       // (N, C)
  }
  return finish(D, tmp);
}
