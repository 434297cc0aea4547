// Scaled dot-product attention: softmax(scale · q kᵀ + mask) v over the last two axes.
//   q (B, H, Tq, D), k/v (B, H, Tk, D) -> (B, H, Tq, D); scale defaults to 1/sqrt(D).
// Masks: `causal` (key j visible to query i iff j <= i + Tk - Tq, so a one-token decode step sees the
// whole cache) or `levels` (visible iff levelK[j] <= levelQ[i]: level = position is causal, level = scale
// index is VAR's block-causal pattern); levels win when both are given. A query that sees no key gets 0.
// `attention` runs the fused kernel (cpu, or cuda for D <= 256; elsewhere it falls back with a one-time
// note); `attentionComposite` builds the same maths from matmul and softmax and is the reference and
// debugging path (DD2_NO_FUSED=1 makes `attention` use it).
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty, tensor } from '../create.js';
import { check, expectDtype, supports } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { fmtShape } from '../shape.js';
import type { Device } from '../dtype.js';
import { contiguous } from './shape.js';
import { add, mul, mulScalar } from './elementwise.js';
import { matmul } from './matmul.js';
import { softmax } from './softmax.js';

export type Levels = Int32Array | readonly number[];

export interface AttentionOptions {
  /** causal mask (ignored when `levels` is given) */
  causal?: boolean;
  /** one level per position, shared by queries and keys (needs Tq == Tk), or separate arrays {q, k} */
  levels?: Levels | { q: Levels; k: Levels };
  /** score scale; default 1/sqrt(D) */
  scale?: number;
}

interface Plan {
  B: number; H: number; Tq: number; Tk: number; D: number; scale: number; causal: boolean;
  lq: Int32Array | null; lk: Int32Array | null;
}

function toLevels(op: string, x: Levels, n: number, what: string): Int32Array {
  if (x.length !== n) {
    throw new RangeError(`dd2: ${op}: ${what} has ${x.length} entries, expected ${n} (one per position)`);
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isInteger(x[i]) || Math.abs(x[i]) > 2 ** 31 - 1) {
      throw new RangeError(`dd2: ${op}: ${what}[${i}] = ${x[i]} is not a 32-bit integer`);
    }
  }
  return x instanceof Int32Array ? x : Int32Array.from(x);
}

function plan(op: string, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Plan {
  expectDtype(op, q, 'float32', 'q');
  expectDtype(op, k, 'float32', 'k');
  expectDtype(op, v, 'float32', 'v');
  const bad = (): never => {
    throw new RangeError(`dd2: ${op}: expected q (B, H, Tq, D) and k, v (B, H, Tk, D), got q ${fmtShape(q.shape)}, ` +
      `k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  };
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) bad();
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D) bad();
  if (v.shape.some((n, i) => n !== k.shape[i])) bad();
  if (D === 0) throw new RangeError(`dd2: ${op}: head dim D is 0 (q ${fmtShape(q.shape)})`);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new RangeError(`dd2: ${op}: scale must be finite, got ${scale}`);
  let lq: Int32Array | null = null, lk: Int32Array | null = null;
  const lv = opts.levels;
  if (lv) {
    if ('q' in lv && 'k' in lv && !(lv instanceof Int32Array) && !Array.isArray(lv)) {
      lq = toLevels(op, lv.q, Tq, 'levels.q');
      lk = toLevels(op, lv.k, Tk, 'levels.k');
    } else {
      if (Tq !== Tk) {
        throw new RangeError(`dd2: ${op}: one levels array needs Tq == Tk (got Tq=${Tq}, Tk=${Tk}); pass {q, k}`);
      }
      lq = lk = toLevels(op, lv as Levels, Tq, 'levels');
    }
  }
  return { B, H, Tq, Tk, D, scale, causal: !!opts.causal, lq, lk };
}

/** Largest head dim of the float32 cuda kernels (kAttentionCudaMaxD in native/include/dd2/cuda/attention.h). */
const CUDA_MAX_D = 256;

const noted = new Set<string>();
function note(msg: string): void {
  if (noted.has(msg)) return;
  noted.add(msg);
  process.stderr.write(`dd2: attention: ${msg}\n`);
}

/** Fused attention (flash-attention style kernel, O(T) memory); autograd through attention_backward. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (process.env.DD2_NO_FUSED === '1') {
    note('DD2_NO_FUSED=1: using the composite (matmul + softmax) path');
    return attentionComposite(q, k, v, opts);
  }
  const p = plan('attention', q, k, v, opts);
  const device = check('attention', [], q, k, v);
  if (!supports('attention_forward', device) || !supports('attention_backward', device)) {
    note(`no fused kernel on ${device}; using the composite (matmul + softmax) path`);
    return attentionComposite(q, k, v, opts);
  }
  if (device === 'cuda' && p.D > CUDA_MAX_D) {
    note(`head dim ${p.D} > ${CUDA_MAX_D} has no fused cuda kernel; using the composite (matmul + softmax) path`);
    return attentionComposite(q, k, v, opts);
  }
  const { B, H, Tq, Tk, D, scale, causal } = p;
  const qc = contiguous(q), kc = contiguous(k), vc = contiguous(v);
  const lq = p.lq ? tensor(p.lq, [Tq], { dtype: 'int32', device }) : null;
  const lk = p.lk === p.lq ? lq : tensor(p.lk!, [Tk], { dtype: 'int32', device });
  const o = empty([B, H, Tq, D], { device });
  const lse = empty([B, H, Tq], { device });
  const lqId = lq ? lq.id : -1, lkId = lk ? lk.id : -1;
  const temps = [...new Set([qc, kc, vc].filter((t) => t !== q && t !== k && t !== v)), lse, lq, lk];
  try {
    native.attention_forward(o.id, lse.id, qc.id, kc.id, vc.id, B * H, Tq, Tk, D, scale, causal, lqId, lkId);
  } catch (e) {
    for (const t of [o, ...temps]) t?.dispose();
    throw e;
  }
  record('attention', [q, k, v], o, (dy) => {
    const dyc = contiguous(dy);
    const dq = empty(q.shape, { device }), dk = empty(k.shape, { device }), dv = empty(v.shape, { device });
    native.attention_backward(dq.id, dk.id, dv.id, dyc.id, qc.id, kc.id, vc.id, o.id, lse.id, B * H, Tq, Tk, D,
      scale, causal, lqId, lkId);
    return [dq, dk, dv];
  });
  if (!o.node) for (const t of temps) t?.dispose();
  return o;
}

// Masked scores get -1e30 rather than -inf: exp(-1e30 - max) is exactly 0 for any realistic score, and
// a fully masked row stays finite (uniform) instead of relying on softmax's handling of all -inf rows.
const MASKED = -1e30;

/** Additive mask (Tq, Tk) of 0 / -1e30, and a (Tq, 1) 0/1 row mask when some query sees no key
 *  (null when not needed). */
function masks(p: Plan, device: Device): { add: Tensor | null; rows: Tensor | null } {
  const { Tq, Tk, lq, lk, causal } = p;
  if (!lq && !causal) return { add: null, rows: null };
  const m = new Float32Array(Tq * Tk);
  const rows = new Float32Array(Tq);
  let hidden = false, empties = false;
  for (let i = 0; i < Tq; i++) {
    for (let j = 0; j < Tk; j++) {
      const vis = lq && lk ? lk[j] <= lq[i] : j <= i + Tk - Tq;
      if (vis) rows[i] = 1;
      else { m[i * Tk + j] = MASKED; hidden = true; }
    }
    if (!rows[i]) empties = true;
  }
  return {
    add: hidden ? tensor(m, [Tq, Tk], { device }) : null,
    rows: empties ? tensor(rows, [Tq, 1], { device }) : null,
  };
}

/**
 * The same attention from primitive ops with their own autograd: s = scale · q kᵀ (+ mask of 0 / -1e30),
 * p = softmax(s), out = p v. Materialises the (B, H, Tq, Tk) scores. Fully masked rows: their scores are
 * all -1e30, so softmax spreads them uniformly (finite); the output is then multiplied by a 0/1 row mask,
 * which makes those rows 0 and stops their gradient (zero upstream gradient into softmax).
 */
export function attentionComposite(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const p = plan('attentionComposite', q, k, v, opts);
  const device = check('attentionComposite', [], q, k, v);
  const mk = masks(p, device);
  const tmp: Tensor[] = [];
  const keepTmp = <T extends Tensor>(t: T): T => { tmp.push(t); return t; };
  const raw = keepTmp(matmul(q, k, { transB: true }));          // (B, H, Tq, Tk)
  let s = keepTmp(mulScalar(raw, p.scale));
  if (mk.add) s = keepTmp(add(s, keepTmp(mk.add)));
  const probs = keepTmp(softmax(s, -1));
  let out = matmul(probs, v);                                    // (B, H, Tq, D)
  if (mk.rows) {
    keepTmp(out);
    out = mul(out, keepTmp(mk.rows));
  }
  if (!out.node) for (const t of tmp) t.dispose();
  return out;
}
