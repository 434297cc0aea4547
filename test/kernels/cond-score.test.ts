// DD2 conditional denoiser / score (condDenoise, condScore, condVelocity) and the fused CSD gradient
// (csdGrad): forward against the float64 log-sum-exp reference, the score against central differences
// of the float64 log mixture density, the VJP against finite differences (checkOp) and the analytic
// float64 covariance form, the fused kernels against the composite (autograd) path, csdGrad against
// autograd through the composite SiD loss, and bad inputs. t from 1e-3 (one-hot weights, logits ~1e6)
// to 0.99 (weights ≈ p); dense and top-k probabilities with zero entries; L2-normalised and raw codes.
import t from 'tap';
import type { Test } from 'tap';
import {
  condDenoise, condDenoiseComposite, condScore, condVelocity, csdGrad, type MixtureProbs,
} from '../../lib/tensor/ops/cond-score.js';
import { tensor } from '../../lib/tensor/create.js';
import { tidy, memory, noGrad } from '../../lib/tensor/engine.js';
import { backward } from '../../lib/autograd/tape.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { add, mul, scalarOp, sub, tanh } from '../../lib/tensor/ops/elementwise.js';
import { sum } from '../../lib/tensor/ops/reduce.js';
import { reshape } from '../../lib/tensor/ops/shape.js';
import { linear } from '../../lib/tensor/ops/matmul.js';
import { checkOp } from '../harness/gradcheck.js';
import { expectClose, expectCloseScaled, Rng } from '../harness/compare.js';
import { condDenoiseRef, condDenoiseVjpRef, csdRef, logDensityRef, type RefProbs } from '../ref/cond-score.js';

const rng = new Rng(2510);
const before = memory();

// TOLERANCES (measured maxima printed by each assertion; limits ~5-10x above them). The kernels keep
// logits in double (float logits measured 5e-5 at t = 1e-3 and 1e-5 at t = 0.1 on this forward test).
// forward D vs float64, |err| / max|code|: measured 5.5e-8 (t = 1e-3: 2.9e-8); 4e-7.
const FWD_TOL = 4e-7;
// score vs float64 central differences of log p_t, |err| / ((|x| + a|D|)/t²): measured 2.2e-7; 1e-6.
const SCORE_TOL = 1e-6;
// VJP vs finite differences (checkOp, relative to the largest |fd|): measured 1.2e-7; 1e-6.
const VJP_FD = { rtol: 1e-6 };
// VJP vs the analytic float64 covariance form, |err| / ((a/t²)·Σ w |c−D|²·|g|): measured 2.6e-7
// (near-tie rows at t = 1e-3: 4.9e-8); 2e-6.
const VJP_TOL = 2e-6;
// fused vs composite (t >= 0.05; the composite's expanded float logits lose ~1e-7·a/t²): measured
// forward 1.0e-6 of max|c| (t = 0.05) and gradient 9.6e-8 of (a/t²)·max|c|²·max|g|; 5e-6 and 1e-6.
const COMP_FWD = 5e-6, COMP_BWD = 1e-6;
// csdGrad vs autograd through the composite loss (t in [0.05, 0.95]), |err| / max|grad|: measured
// 6.2e-7; 4e-6. Loss / detached gradient vs float64 (loss relative to Σ|u_c w_c|/λ): measured 4.1e-7 /
// 1.2e-7; 2e-6.
const CSD_TOL = 4e-6, CSD_REF = 2e-6;

const T_VALUES = [1e-3, 0.1, 0.5, 0.99];

interface Mix {
  N: number; C: number; V: number; K: number;
  code: Float32Array; dense: Float32Array | null; idx: Int32Array | null; val: Float32Array | null;
}

function codebook(V: number, C: number, normed: boolean): Float32Array {
  const c = rng.normal(V * C);
  if (normed) {
    for (let j = 0; j < V; j++) {
      let n = 0;
      for (let k = 0; k < C; k++) n += c[j * C + k] ** 2;
      n = Math.sqrt(n) || 1;
      for (let k = 0; k < C; k++) c[j * C + k] /= n;
    }
  }
  return c;
}

/** Probability rows with about 30 % zeros (at least one positive entry), normalised in float64. */
function probRow(n: number): Float32Array {
  const p = new Float32Array(n);
  let s = 0;
  for (let j = 0; j < n; j++) {
    const u = rng.next();
    p[j] = rng.next() < 0.3 ? 0 : u * u * u + 1e-4;
    s += p[j];
  }
  if (s === 0) { p[Math.floor(rng.next() * n)] = 1; s = 1; }
  for (let j = 0; j < n; j++) p[j] /= s;
  return p;
}

function mixture(N: number, C: number, V: number, sparse: boolean, normed: boolean): Mix {
  const code = codebook(V, C, normed);
  if (!sparse) {
    const dense = new Float32Array(N * V);
    for (let r = 0; r < N; r++) dense.set(probRow(V), r * V);
    return { N, C, V, K: 0, code, dense, idx: null, val: null };
  }
  const K = Math.max(1, Math.min(V, 9));
  const idx = rng.ints(N * K, V), val = new Float32Array(N * K);
  for (let r = 0; r < N; r++) val.set(probRow(K), r * K);
  return { N, C, V, K, code, dense: null, idx, val };
}

const refProbs = (m: Mix): RefProbs => ({ dense: m.dense, idx: m.idx, val: m.val, V: m.V, K: m.K });

function probs(m: Mix): MixtureProbs {
  if (m.dense) return { dense: tensor(m.dense, [m.N, m.V]) };
  return { idx: tensor(m.idx!, [m.N, m.K]), val: tensor(m.val!, [m.N, m.K]) };
}

/** Support (code index, probability) of row r. */
function support(m: Mix, r: number): number[] {
  const out: number[] = [];
  if (m.dense) { for (let j = 0; j < m.V; j++) if (m.dense[r * m.V + j] > 0) out.push(j); }
  else for (let e = 0; e < m.K; e++) if (m.val![r * m.K + e] > 0) out.push(m.idx![r * m.K + e]);
  return out;
}

/** Noisy tokens a·c_j + t·ε around a supported code (every fifth row: a plain N(0, 1) point). */
function noisy(m: Mix, tv: Float32Array): Float32Array {
  const x = new Float32Array(m.N * m.C);
  for (let r = 0; r < m.N; r++) {
    const sup = support(m, r), j = sup[Math.floor(rng.next() * sup.length)], a = 1 - tv[r];
    const eps = rng.normal(m.C);
    for (let c = 0; c < m.C; c++) x[r * m.C + c] = r % 5 === 4 ? eps[c] : a * m.code[j * m.C + c] + tv[r] * eps[c];
  }
  return x;
}

const maxAbs = (a: ArrayLike<number>): number => { let v = 0; for (let i = 0; i < a.length; i++) v = Math.max(v, Math.abs(a[i])); return v; };
const fill = (n: number, v: number): Float32Array => new Float32Array(n).fill(v);
const label = (m: Mix, normed: boolean, tv: number): string =>
  `${m.dense ? 'dense' : `top-${m.K}`} N=${m.N} C=${m.C} V=${m.V} ${normed ? 'normed' : 'raw'} t=${tv}`;

t.test('1. condDenoise matches the float64 log-sum-exp reference', async (t) => {
  for (const tv of T_VALUES) for (const sparse of [false, true]) for (const V of [4, 33, 512])
    for (const C of [2, 8]) for (const N of [1, 7, 100]) for (const normed of [true, false]) {
      const m = mixture(N, C, V, sparse, normed), ts = fill(N, tv), x = noisy(m, ts);
      tidy(() => {
        const D = condDenoise(tensor(x, [N, C]), tensor(ts, [N]), tensor(m.code, [V, C]), probs(m));
        const want = condDenoiseRef(x, ts, m.code, refProbs(m), N, C).D;
        expectCloseScaled(t, `D ${label(m, normed, tv)}`, D.toFloat32Array(), want, fill(N * C, maxAbs(m.code)), FWD_TOL);
      });
    }
});

t.test('1b. a row without positive probability gives D = 0 and no gradient', async (t) => {
  tidy(() => {
    const code = codebook(5, 3, false);
    const P = new Float32Array(10);
    P.set([0.2, 0.3, 0.5, 0, 0], 0);   // row 0 valid, row 1 all zero
    const x = tensor(rng.normal(6), [2, 3]);
    x.requiresGrad = true;
    const D = condDenoise(x, tensor([0.3, 0.3]), tensor(code, [5, 3]), { dense: tensor(P, [2, 5]) });
    const d = D.toFloat32Array();
    t.same([...d.slice(3)], [0, 0, 0], 'empty row: D = 0');
    t.ok(d.slice(0, 3).some((v) => v !== 0), 'valid row: D != 0');
    backward(D, tensor(rng.normal(6), [2, 3]));
    t.same([...x.grad!.toFloat32Array().slice(3)], [0, 0, 0], 'empty row: zero gradient');
    x.grad!.dispose();
  });
});

t.test('2. the score equals central differences of the float64 log mixture density', async (t) => {
  for (const tv of T_VALUES) for (const sparse of [false, true]) for (const [V, C] of [[33, 2], [512, 8]] as const)
    for (const normed of [true, false]) {
      const N = 7, m = mixture(N, C, V, sparse, normed), ts = fill(N, tv), x = noisy(m, ts);
      tidy(() => {
        const args = [tensor(x, [N, C]), tensor(ts, [N]), tensor(m.code, [V, C]), probs(m)] as const;
        const s = condScore(...args).toFloat32Array(), v = condVelocity(...args).toFloat32Array();
        const D = condDenoise(...args).toFloat32Array();
        const fd = new Float64Array(N * C), scale = new Float64Array(N * C), vWant = new Float64Array(N * C);
        const x64 = Float64Array.from(x), rp = refProbs(m), a = 1 - tv;
        for (let r = 0; r < N; r++) for (let c = 0; c < C; c++) {
          const i = r * C + c, x0 = x64[i], h = 1e-4 * tv;
          x64[i] = x0 + h;
          const lp = logDensityRef(x64, r * C, tv, m.code, C, rp, r);
          x64[i] = x0 - h;
          const lm = logDensityRef(x64, r * C, tv, m.code, C, rp, r);
          x64[i] = x0;
          fd[i] = (lp - lm) / (2 * h);
          scale[i] = (Math.abs(x0) + a * Math.abs(D[i])) / (tv * tv);
          vWant[i] = (x0 - D[i]) / tv;   // velocity from the same D: checks the composition only
        }
        expectCloseScaled(t, `score vs d/dx log p_t ${label(m, normed, tv)}`, s, fd, scale, SCORE_TOL);
        expectClose(t, `velocity (x − D)/t ${label(m, normed, tv)}`, v, vWant, { rtol: 1e-6, atol: 1e-6 / tv });
      });
    }
});

/** Natural gradient scale of D at time tv: (a/t²)·max|c|² (the Jacobian is (a/t²)·Cov_w(c)). */
const jacScale = (m: Mix, tv: number): number => ((1 - tv) / (tv * tv)) * maxAbs(m.code) ** 2;

t.test('3. the VJP against finite differences and the analytic covariance form', async (t) => {
  for (const tv of [0.02, 0.1, 0.5, 0.99]) for (const sparse of [false, true]) for (const [V, C] of [[33, 2], [512, 8]] as const)
    for (const normed of [true, false]) {
      const N = 7, m = mixture(N, C, V, sparse, normed), ts = fill(N, tv), x = noisy(m, ts);
      const extra = m.dense
        ? [{ data: m.dense, shape: [N, V], grad: false }]
        : [{ data: m.idx!, shape: [N, m.K] }, { data: m.val!, shape: [N, m.K], grad: false }];
      checkOp(t, {
        name: `condDenoise ${label(m, normed, tv)}`,
        inputs: [{ data: x, shape: [N, C] }, { data: ts, shape: [N], grad: false },
          { data: m.code, shape: [V, C], grad: false }, ...extra],
        run: ([xx, tt, cc, p0, p1]) => condDenoise(xx, tt, cc, m.dense ? { dense: p0 } : { idx: p0, val: p1 }),
        ref: ([xx, tt, cc]) => condDenoiseRef(xx, tt, cc, refProbs(m), N, C).D,
        forward: { atol: FWD_TOL * maxAbs(m.code), rtol: 0 },
        // atol: rows whose weights are one-hot have gradients ~1e-10 where both sides are rounding noise
        backward: { ...VJP_FD, atol: 1e-9 * C * jacScale(m, tv) },
      });
    }
  // All t (including 1e-3, where central differences of a 1e6-steep function are meaningless) against
  // the float64 analytic form. Every tenth row sits near a tie between two supported codes (halfway,
  // nudged by 0.3·t² along their difference), where the weights are not one-hot even at t = 1e-3.
  for (const tv of T_VALUES) for (const sparse of [false, true]) for (const normed of [true, false]) {
    const N = 100, C = 8, V = 512, m = mixture(N, C, V, sparse, normed), ts = fill(N, tv), x = noisy(m, ts);
    for (let r = 3; r < N; r += 10) {
      const sup = support(m, r);
      if (sup.length < 2 || sup[0] === sup[1]) continue;
      const [j, k] = [sup[0], sup[1]], a = 1 - tv;
      for (let c = 0; c < C; c++) {
        const cj = m.code[j * C + c], ck = m.code[k * C + c];
        x[r * C + c] = a * (cj + ck) / 2 + tv * tv * (cj - ck) * 0.3;
      }
    }
    const g = rng.normal(N * C);
    tidy(() => {
      const xt = tensor(x, [N, C]);
      xt.requiresGrad = true;
      const D = condDenoise(xt, tensor(ts, [N]), tensor(m.code, [V, C]), probs(m));
      backward(D, tensor(g, [N, C]));
      expectCloseScaled(t, `D with near-ties ${m.dense ? 'dense' : 'top-k'} ${normed ? 'normed' : 'raw'} t=${tv}`,
        D.toFloat32Array(), condDenoiseRef(x, ts, m.code, refProbs(m), N, C).D, fill(N * C, maxAbs(m.code)), FWD_TOL);
      const want = condDenoiseVjpRef(g, x, ts, m.code, refProbs(m), N, C);
      // Scale per row: (a/t²)·Σ_j w_j |c_j − D|²·|g| (bounds every term of the sum), plus the floor a
      // float32 D leaves in the centred differences, (a/t²)·(1e-6·max|c|)²·|g|, over the tolerance.
      const spread = new Float64Array(N);   // (a/t²)·trace Cov_w(c), from the reference with unit upstreams
      for (let c = 0; c < C; c++) {
        const e = new Float64Array(N * C);
        for (let r = 0; r < N; r++) e[r * C + c] = 1;
        const v = condDenoiseVjpRef(e, x, ts, m.code, refProbs(m), N, C);
        for (let r = 0; r < N; r++) spread[r] += v[r * C + c];
      }
      const scale = new Float64Array(N * C);
      for (let r = 0; r < N; r++) {
        let gn = 0;
        for (let c = 0; c < C; c++) gn += g[r * C + c] ** 2;
        const floor = jacScale(m, tv) * 1e-12 / VJP_TOL;
        scale.fill((spread[r] + floor) * Math.sqrt(gn), r * C, r * C + C);
      }
      expectCloseScaled(t, `VJP vs analytic ${m.dense ? 'dense' : 'top-k'} ${normed ? 'normed' : 'raw'} t=${tv}`,
        xt.grad!.toFloat32Array(), want, scale, VJP_TOL);
      xt.grad!.dispose();
    });
  }
});

t.test('4. fused condDenoise equals condDenoiseComposite (forward and gradient)', async (t) => {
  for (const tv of [0.05, 0.3, 0.9]) for (const sparse of [false, true]) for (const normed of [true, false]) {
    const N = 40, C = 8, V = 256, m = mixture(N, C, V, sparse, normed), ts = fill(N, tv), x = noisy(m, ts);
    const g = rng.normal(N * C);
    tidy(() => {
      const run = (f: typeof condDenoise): [Float32Array, Float32Array] => {
        const xx = tensor(x, [N, C]);
        xx.requiresGrad = true;
        const D = f(xx, tensor(ts, [N]), tensor(m.code, [V, C]), probs(m));
        backward(D, tensor(g, [N, C]));
        const out: [Float32Array, Float32Array] = [D.toFloat32Array(), xx.grad!.toFloat32Array()];
        xx.grad!.dispose();
        return out;
      };
      const [Df, gf] = run(condDenoise), [Dc, gc] = run(condDenoiseComposite);
      const name = `${m.dense ? 'dense' : 'top-k'} ${normed ? 'normed' : 'raw'} t=${tv}`;
      expectCloseScaled(t, `forward ${name}`, Df, Dc, fill(N * C, maxAbs(m.code)), COMP_FWD);
      // The composite's softmax backward is the uncentred Σ w (c·g) c − (D·g) D: its rounding noise is
      // ~1e-7 of the natural scale (a/t²)·max|c|²·max|g| even where the true gradient is ~0.
      expectCloseScaled(t, `gradient ${name}`, gf, gc, fill(N * C, jacScale(m, tv) * maxAbs(g)), COMP_BWD);
    });
  }
});

t.test('5. csdGrad against autograd through the composite SiD loss', async (t) => {
  const N = 24, C = 8, V = 64, scale = 0.7, lambdaMin = 1e-6;
  for (const alpha of [1, 1.2]) for (const sparse of [false, true]) {
    const m = mixture(N, C, V, sparse, true);
    const ts = Float32Array.from({ length: N }, () => 0.05 + 0.9 * rng.next());
    // generator output: a perturbed code, so that Dphi and x differ by a realistic amount
    const x0 = noisy(m, fill(N, 0.15)), eps = rng.normal(N * C);
    const W = rng.normal(C * C, 0.5), b = rng.normal(C, 0.1);
    const name = `${sparse ? 'top-k' : 'dense'} alpha=${alpha}`;
    tidy(() => {
      const tt = tensor(ts, [N]), t1 = reshape(tt, [N, 1]), code = tensor(m.code, [V, C]), p = probs(m);
      const Wt = tensor(W, [C, C]), bt = tensor(b, [C]);
      const head = (z: Tensor): Tensor => sub(z, mul(t1, tanh(linear(z, Wt, bt))));   // Dpsi = z − t·h(z)
      const noisyOf = (z: Tensor): Tensor => add(mul(scalarOp(t1, 1, 'rsub'), z), mul(t1, tensor(eps, [N, C])));
      // autograd through the whole composite loss
      const x = tensor(x0, [N, C]);
      x.requiresGrad = true;
      const xt = noisyOf(x);
      const dphi = condDenoiseComposite(xt, tt, code, p), dpsi = head(xt);
      const lam = noGrad(() => {
        const d = dphi.toFloat32Array(), l = new Float32Array(N);
        for (let r = 0; r < N; r++) {
          let s = 0;
          for (let c = 0; c < C; c++) s += Math.abs(x0[r * C + c] - d[r * C + c]);
          l[r] = Math.max(s / C, lambdaMin);
        }
        return tensor(l, [N]);
      });
      const u = sub(dphi, dpsi), w = sub(sub(dphi, x), scalarOp(u, alpha, 'mul'));
      const lossRows = scalarOp(sum(mul(u, w), -1), 1, 'mul');
      const L = scalarOp(sum(mul(lossRows, scalarOp(lam, -1, 'pow'))), scale, 'mul');
      backward(L);
      const want = x.grad!.toFloat32Array();
      // fused: gx + (1 − t)·VJP of Dpsi with gDpsi
      const xtv = xt.toFloat32Array(), dpsiv = dpsi.toFloat32Array();
      const r = csdGrad({ x: tensor(x0, [N, C]), xt: tensor(xtv, [N, C]), t: tt, dpsi: tensor(dpsiv, [N, C]),
        codebook: code, p, alpha, scale, lambdaMin });
      const z = tensor(xtv, [N, C]);
      z.requiresGrad = true;
      backward(head(z), r.gDpsi);
      const gz = z.grad!.toFloat32Array(), gx = r.gx.toFloat32Array(), got = new Float32Array(N * C);
      for (let i = 0; i < N * C; i++) got[i] = gx[i] + (1 - ts[Math.floor(i / C)]) * gz[i];
      expectCloseScaled(t, `gx ${name}`, got, want, fill(N * C, maxAbs(want)), CSD_TOL);
      // loss and Dphi against float64
      const ref = csdRef(x0, xtv, ts, dpsiv, m.code, refProbs(m), N, C, alpha, scale, lambdaMin);
      // loss scale: Σ_c |u_c|·|w_c| / λ (the sum of the absolute terms of u·w/λ)
      const lossScale = new Float64Array(N);
      for (let q = 0; q < N; q++) {
        let dist = 0, s = 0;
        for (let c = 0; c < C; c++) dist += Math.abs(x0[q * C + c] - ref.dphi[q * C + c]);
        for (let c = 0; c < C; c++) {
          const i = q * C + c, u = ref.dphi[i] - dpsiv[i];
          s += Math.abs(u) * Math.abs(ref.dphi[i] - x0[i] - alpha * u);
        }
        lossScale[q] = s / Math.max(dist / C, lambdaMin);
      }
      expectCloseScaled(t, `loss ${name}`, r.loss.toFloat32Array(), ref.loss, lossScale, CSD_REF);
      expectCloseScaled(t, `dphi ${name}`, r.dphi.toFloat32Array(), ref.dphi, fill(N * C, maxAbs(m.code)), FWD_TOL);
      // detached: closed form, no gDpsi
      const d = csdGrad({ x: tensor(x0, [N, C]), xt: tensor(xtv, [N, C]), t: tt, dpsi: tensor(dpsiv, [N, C]),
        codebook: code, p, alpha, scale, lambdaMin, detached: true });
      expectCloseScaled(t, `detached gx ${name}`, d.gx.toFloat32Array(), ref.gxDetached,
        fill(N * C, maxAbs(ref.gxDetached)), CSD_REF);
      t.equal(maxAbs(d.gDpsi.toFloat32Array()), 0, `detached gDpsi is zero (${name})`);
      expectCloseScaled(t, `detached loss ${name}`, d.loss.toFloat32Array(), ref.loss, lossScale, CSD_REF);
      x.grad!.dispose();
      z.grad!.dispose();
    });
  }
});

t.test('6. bad inputs give clear errors', async (t) => {
  tidy(() => {
    const x = tensor(rng.normal(6), [2, 3]), tt = tensor([0.5, 0.5]), code = tensor(rng.normal(12), [4, 3]);
    const P = tensor(new Float32Array(8).fill(0.25), [2, 4]);
    const idx = tensor(new Int32Array([0, 1, 2, 3]), [2, 2]), val = tensor([0.5, 0.5, 0.5, 0.5], [2, 2]);
    const t3 = tensor([0.5, 0.5, 0.5]), narrow = tensor(rng.normal(8), [4, 2]), P5 = tensor(new Float32Array(10), [2, 5]);
    const val3 = tensor([1, 1, 1], [1, 3]), badIdx = tensor(new Int32Array([0, 4, 1, 1]), [2, 2]);
    const wide = tensor(new Float32Array(65), [1, 65]), t1 = tensor([0.5]), P1 = tensor([1], [1, 1]);
    const xt1 = tensor(new Float32Array(3), [1, 3]);
    const m0 = memory();
    t.throws(() => condDenoise(x, t3, code, { dense: P }), /t must have shape \(2\)/, 't length');
    t.throws(() => condDenoise(x, tt, narrow, { dense: P }), /codebook must have shape \(V, 3\)/, 'codebook width');
    t.throws(() => condDenoise(x, tt, code, { dense: P5 }), /dense probabilities must have shape \(N, V\) = \(2, 4\)/,
      'dense shape');
    t.throws(() => condDenoise(x, tt, code, { dense: P, idx, val }), /exactly one of .*got both/, 'both forms');
    t.throws(() => condDenoise(x, tt, code, {}), /exactly one of .*got neither/, 'neither form');
    t.throws(() => condDenoise(x, tt, code, { idx }), /need both idx .* and val/, 'idx without val');
    t.throws(() => condDenoise(x, tt, code, { idx, val: val3 }), /sparse val must have shape \(2, 2\)/, 'val shape');
    t.throws(() => condDenoise(x, tt, code, { idx: val, val }), { name: 'TypeError', message: /sparse idx must be int32/ },
      'float idx');
    t.throws(() => condDenoise(x, tt, code, { idx: badIdx, val }),
      { name: 'RangeError', message: /sparse index 4 at row 0, entry 1 is out of range \[0, 4\)/ }, 'index out of range');
    t.throws(() => csdGrad({ x, xt: x, t: tt, dpsi: x, codebook: code, p: { idx: badIdx, val } }),
      { name: 'RangeError', message: /csd_grad: sparse index 4 at row 0/ }, 'csdGrad index out of range');
    t.throws(() => condDenoise(wide, t1, wide, { dense: P1 }), /code dim C=65 exceeds the fused kernels' maximum 64/,
      'C > 64');
    t.throws(() => csdGrad({ x, xt: xt1, t: tt, dpsi: x, codebook: code, p: { dense: P } }),
      /xt must have shape \(2, 3\) like x/, 'csdGrad xt shape');
    t.throws(() => csdGrad({ x, xt: x, t: tt, dpsi: x, codebook: code, p: { dense: P }, lambdaMin: 0 }),
      /lambdaMin must be > 0/, 'csdGrad lambdaMin');
    t.equal(memory().tensors, m0.tensors, 'failed calls leave no tensors behind');
    t.equal(memory().cpu.bytes, m0.cpu.bytes, 'failed calls leave no native memory behind');
    t.equal(memory().cuda.bytes, m0.cuda.bytes, 'failed calls leave no device memory behind');
  });
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, before.cpu.bytes, 'native bytes back to baseline');
  t.equal(after.cuda.bytes, before.cuda.bytes, 'device bytes back to baseline (DD2_DEFAULT_DEVICE=cuda)');
});
