// Optimiser kernels and their TS drivers: adamw_step over several steps against a float64 reference
// (with and without weight decay, sizes off block multiples, extreme gradients), ema_update, the
// AdamW class (groups, skipped parameters, state round trip), clipGradNorm, EMA and cosineSchedule;
// with a GPU, the cpu and cuda kernels agree bit for bit. Runs on the default device (DD2_DEFAULT_DEVICE).
import t from 'tap';
import { native } from '../../lib/tensor/native.js';
import { getDefaultDevice, tensor, zeros } from '../../lib/tensor/create.js';
import { keep, memory, tidy } from '../../lib/tensor/engine.js';
import { supports } from '../../lib/tensor/kernel.js';
import { parameter } from '../../lib/nn/module.js';
import { AdamW, clipGradNorm, cosineSchedule, EMA } from '../../lib/nn/optim.js';
import { EPS32, expectClose, expectCloseScaled, Rng } from '../harness/compare.js';
import { adamwRef, adamwScale, clipRef, cosineRef, emaRef, globalNormRef, type AdamWHyper } from '../ref/optim.js';
import type { Tensor } from '../../lib/tensor/tensor.js';

const rng = new Rng(11);
const before = memory();

t.test('kernels are registered on the CPU and the default device', async (t) => {
  for (const d of new Set(['cpu', getDefaultDevice()] as const)) {
    t.ok(supports('adamw_step', d), `adamw_step on ${d}`);
    t.ok(supports('ema_update', d), `ema_update on ${d}`);
  }
});

// Tolerances are scale-aware (expectCloseScaled): an element's error is divided by a magnitude bound
// from the reference (for p: |p0| plus every |change| made to it; for m: the same average over |g|,
// which bounds the terms that cancel in m; v has no cancellation and is its own scale). Each step
// rounds a handful of float32 operations, each within u of its result, and the reference's scales
// accumulate those magnitudes step by step. Measured worst ratios (test log): p 0.72 u, m 0.82 u,
// v 1.32 u (u = 2^-24), and m exactly 0 for beta1 = 0; tolerance 4 u.
const TOL = 4 * EPS32;
const hypers: [string, AdamWHyper][] = [
  ['wd=0', { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }],
  ['wd=0.1', { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }],
  ['betas 0.8/0.95 wd=0.05 lr=3e-3', { lr: 3e-3, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.05 }],
  // weights >= 1/2 take the kernel's other lerp form; beta1 = 0 must give m = g exactly
  ['betas 0/0.3 wd=0.01 lr=1e-3', { lr: 1e-3, beta1: 0, beta2: 0.3, eps: 1e-8, weightDecay: 0.01 }],
];

t.test('adamw_step matches the float64 reference over 6 steps', async (t) => {
  for (const [hname, h] of hypers) {
    for (const n of [1, 7, 33, 1000, 40001]) {
      tidy(() => {
        const p0 = rng.uniform(n, -1, 1);
        const p = tensor(p0), m = zeros([n]), v = zeros([n]);
        const rp = Float64Array.from(p0), rm = new Float64Array(n), rv = new Float64Array(n);
        const sc = adamwScale(n);
        for (let step = 1; step <= 6; step++) {
          const g0 = rng.normal(n, step === 3 ? 10 : 0.5);
          const g = tensor(g0);
          native.adamw_step(p.id, g.id, m.id, v.id, n, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay,
            1 - h.beta1 ** step, 1 - h.beta2 ** step);
          adamwRef(rp, g0, rm, rv, h, step, sc);
          g.dispose();
        }
        expectCloseScaled(t, `${hname} n=${n} p`, p.toFloat32Array(), rp, sc.p, TOL);
        expectCloseScaled(t, `${hname} n=${n} m`, m.toFloat32Array(), rm, sc.m, TOL);
        expectCloseScaled(t, `${hname} n=${n} v`, v.toFloat32Array(), rv, sc.v, TOL);
      });
    }
  }
});

t.test('adamw_step extremes: zero, huge and tiny gradients stay finite and match', async (t) => {
  tidy(() => {
    const h = hypers[1][1];
    const g0 = new Float32Array([0, 1e18, -1e18, 1e-30, -1e-30, 3.5, 0, -2]);
    const n = g0.length;
    const p0 = rng.uniform(n, -1, 1);
    const p = tensor(p0), m = zeros([n]), v = zeros([n]), g = tensor(g0);
    const rp = Float64Array.from(p0), rm = new Float64Array(n), rv = new Float64Array(n), sc = adamwScale(n);
    for (let step = 1; step <= 3; step++) {
      native.adamw_step(p.id, g.id, m.id, v.id, n, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay,
        1 - h.beta1 ** step, 1 - h.beta2 ** step);
      adamwRef(rp, g0, rm, rv, h, step, sc);
    }
    const got = p.toFloat32Array();
    t.ok(got.every(Number.isFinite), `parameters stay finite: ${Array.from(got, (x) => x.toPrecision(4)).join(' ')}`);
    // g = ±1e-30: g² underflows to 0 in float32 while float64 keeps ~1e-63; both are far below eps²,
    // so the denominators agree (~eps) and the update (~lr·1e-22) is negligible. g = ±1e18: g² = 1e36
    // still fits in float32 and the step is ~lr·sign(g).
    expectCloseScaled(t, 'extreme gradients p', got, rp, sc.p, TOL);
  });
});

t.test('adamw_step and ema_update reject bad arguments', async (t) => {
  tidy(() => {
    const a = zeros([4]), b = zeros([4]), c = zeros([4]), d = zeros([4]);
    t.throws(() => native.adamw_step(a.id, b.id, c.id, d.id, 5, 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001),
      RangeError, 'buffer too small');
    t.throws(() => native.adamw_step(a.id, b.id, c.id, d.id, 4, 1e-3, 1.0, 0.999, 1e-8, 0, 0.1, 0.001),
      /betas/, 'beta1 = 1');
    t.throws(() => native.adamw_step(a.id, b.id, c.id, d.id, 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0.001),
      /bias corrections/, 'bc1 = 0');
    t.throws(() => native.ema_update(a.id, b.id, 4, 1.5), /decay/, 'decay > 1');
  });
});

// ema_update: a float32 lerp per step, judged against the accumulated magnitudes of its terms (see
// test/ref/optim.ts). Measured worst ratio 0.79 u after 5 steps; tolerance 4 u. decay 0 and 1 are
// exact (p and the old average).
t.test('ema_update matches the float64 reference over 5 steps', async (t) => {
  for (const n of [1, 7, 33, 40001]) {
    for (const decay of [0, 0.9, 0.9999, 1]) {
      tidy(() => {
        const e0 = rng.uniform(n, -1, 1);
        const e = tensor(e0), re = Float64Array.from(e0), sc = new Float64Array(n);
        for (let s = 0; s < 5; s++) {
          const p0 = rng.uniform(n, -2, 2);
          const p = tensor(p0);
          native.ema_update(e.id, p.id, n, decay);
          emaRef(re, p0, decay, sc);
          p.dispose();
        }
        expectCloseScaled(t, `ema n=${n} decay=${decay}`, e.toFloat32Array(), re, sc, TOL);
      });
    }
  }
});

/** Parameters with given gradients (kept; the caller disposes them). */
function params(sizes: number[], gscale = 1): Tensor[] {
  return sizes.map((n) => {
    const p = parameter(tensor(rng.uniform(n, -1, 1)), `p${n}`);
    p.grad = keep(tensor(rng.normal(n, gscale)));
    return p;
  });
}
function free(ps: Tensor[]): void {
  for (const p of ps) { p.grad?.dispose(); p.dispose(); }
}

t.test('AdamW class: groups, no-decay groups, skipped parameters, state round trip', async (t) => {
  const h = { lr: 5e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.2 };
  const [a, b, c] = params([33, 7, 5]);
  const ref = [a, b, c].map((p) => ({ p: Float64Array.from(p.toFloat32Array()), m: new Float64Array(p.size),
    v: new Float64Array(p.size), t: 0, sc: adamwScale(p.size) }));
  const opt = new AdamW([{ params: [a, b] }, { params: [c], weightDecay: 0 }],
    { lr: h.lr, betas: [h.beta1, h.beta2], eps: h.eps, weightDecay: h.weightDecay });
  const run = (o: AdamW, steps: number) => {
    for (let s = 0; s < steps; s++) {
      for (const [i, p] of [a, b, c].entries()) {
        p.grad?.dispose();
        p.grad = i === 1 && s % 2 === 1 ? null : keep(tensor(rng.normal(p.size, 0.3)));   // b skips odd steps
        if (p.grad) {
          ref[i].t++;
          adamwRef(ref[i].p, p.grad.toFloat32Array(), ref[i].m, ref[i].v, { ...h, weightDecay: i === 2 ? 0 : h.weightDecay }, ref[i].t, ref[i].sc);
        }
      }
      o.step();
    }
  };
  run(opt, 4);
  const st = opt.stateDict();
  t.equal(st.step, 4, 'step count');
  t.same(st.params.map((e) => e?.step), [4, 2, 4], 'per-parameter steps count only steps with a gradient');
  // A fresh optimiser restored from the state continues identically.
  opt.dispose();
  const opt2 = new AdamW([{ params: [a, b] }, { params: [c], weightDecay: 0 }], { lr: 1 });
  opt2.loadStateDict(st);
  t.equal(opt2.groups[0].lr, h.lr, 'lr restored');
  run(opt2, 3);
  for (const [i, p] of [a, b, c].entries()) {
    expectCloseScaled(t, `AdamW param ${i} after 7 steps`, p.toFloat32Array(), ref[i].p, ref[i].sc.p, TOL);
  }
  opt2.zeroGrad();
  t.ok([a, b, c].every((p) => p.grad === null), 'zeroGrad clears gradients');
  t.throws(() => new AdamW([a, a], { lr: 1 }), /more than once/, 'duplicate parameter rejected');
  t.throws(() => opt2.loadStateDict({ ...st, params: st.params.slice(1) }), RangeError, 'wrong state size rejected');
  opt2.dispose();
  free([a, b, c]);
});

// The norm is a float64 sum of float32 squares: measured relative error vs the float64 reference
// up to 1.3e-15 (only summation order differs); rtol 1e-13. Scaled gradients are one float32 multiply
// by a rounded factor: measured maxRel 7.8e-8 (1.3 u); rtol 2e-7.
t.test('clipGradNorm: norm in float64, scales only above maxNorm', async (t) => {
  for (const gscale of [0.01, 1, 100]) {
    const ps = params([1, 7, 33, 1000, 40001], gscale);
    const g0 = ps.map((p) => p.grad!.toFloat32Array());
    const want = globalNormRef(g0);
    const maxNorm = 5;
    const noGrad = parameter(zeros([3]));   // a parameter without a gradient is ignored
    const norm = clipGradNorm([...ps, noGrad], maxNorm);
    noGrad.dispose();
    t.ok(Math.abs(norm - want) <= 1e-13 * want, `norm ${norm} vs float64 ${want} (rel ${(Math.abs(norm - want) / want).toExponential(2)})`);
    const clipped = clipRef(g0, maxNorm);
    ps.forEach((p, i) => {
      const got = p.grad!.toFloat32Array();
      if (want <= maxNorm) t.same(got, g0[i], `gscale=${gscale} n=${p.size}: untouched below maxNorm`);
      else expectClose(t, `gscale=${gscale} n=${p.size}: clipped`, got, clipped[i], { atol: 1e-30, rtol: 2e-7 });
    });
    const after = globalNormRef(ps.map((p) => p.grad!.toFloat32Array()));
    t.ok(after <= maxNorm * (1 + 1e-6), `norm after clipping ${after.toFixed(6)} <= ${maxNorm}`);
    free(ps);
  }
  const bad = params([4]);
  native.fill_f32(bad[0].grad!.id, 4, NaN);
  t.ok(Number.isNaN(clipGradNorm(bad, 1)), 'NaN norm is returned');
  t.throws(() => clipGradNorm(bad, 1, { errorIfNonfinite: true }), /norm is NaN/, 'errorIfNonfinite throws');
  free(bad);
});

t.test('EMA: update, copyTo and swap', async (t) => {
  const ps = params([7, 33]);
  const init = ps.map((p) => Float64Array.from(p.toFloat32Array()));
  const ema = new EMA(ps, 0.9);
  const ref = init.map((x) => Float64Array.from(x)), sc = init.map((x) => new Float64Array(x.length));
  for (let s = 0; s < 4; s++) {
    for (const [i, p] of ps.entries()) {
      const x = rng.uniform(p.size, -1, 1);
      native.storage_write(p.storage.id, 0, x);
      emaRef(ref[i], x, 0.9, sc[i]);
    }
    ema.update();
  }
  ema.shadow.forEach((s, i) => expectCloseScaled(t, `EMA shadow ${i}`, s.toFloat32Array(), ref[i], sc[i], TOL));
  const live = ps.map((p) => p.toFloat32Array()), avg = ema.shadow.map((x) => x.toFloat32Array());
  ema.swap();
  ps.forEach((p, i) => t.same(p.toFloat32Array(), avg[i], `swap puts the average in ${i}`));
  ema.swap();
  ps.forEach((p, i) => t.same(p.toFloat32Array(), live[i], `swap back restores ${i}`));
  const other = params([7, 33]);
  ema.copyTo(other);
  other.forEach((p, i) => t.same(p.toFloat32Array(), ema.shadow[i].toFloat32Array(), `copyTo target ${i}`));
  t.throws(() => ema.copyTo(other.slice(1)), /target has 1 parameters/, 'copyTo checks the count');
  ema.dispose();
  free([...ps, ...other]);
});

t.test('cosineSchedule: warm-up, cosine decay, floor', async (t) => {
  const f = cosineSchedule({ warmup: 10, total: 110, base: 1e-3, min: 1e-5 });
  for (const s of [0, 4, 9, 10, 35, 60, 109, 110, 500]) {
    const want = cosineRef(s, 10, 110, 1e-3, 1e-5);
    t.ok(Math.abs(f(s) - want) <= 1e-15, `step ${s}: ${f(s).toExponential(6)} (want ${want.toExponential(6)})`);
  }
  t.equal(f(9), 1e-3, 'peak at the end of warm-up');
  t.ok(Math.abs(f(60) - (1e-3 + 1e-5) / 2) < 1e-15, 'midpoint of the cosine is the mean of base and min');
  t.equal(cosineSchedule({ warmup: 0, total: 0, base: 1 })(0), 0, 'degenerate schedule reaches min');
  t.throws(() => cosineSchedule({ warmup: 10, total: 5, base: 1 }), RangeError, 'warmup > total rejected');
});

// Both kernels round every float32 operation separately in the same order (the CUDA kernels use
// __f*_rn intrinsics, so nothing is contracted into an FMA) from identically rounded coefficients, so
// after several steps p, m, v and the EMA must be the same bit patterns on cpu and cuda.
const cudaInfo = native.build_info().cuda;
const noGpu = !cudaInfo.compiled ? 'addon built without CUDA'
  : cudaInfo.devices === 0 ? `no CUDA device: ${cudaInfo.error}` : false;

t.test('adamw_step and ema_update: cpu and cuda agree bit for bit', { skip: noGpu }, async (t) => {
  const sameBits = (what: string, a: Float32Array, b: Float32Array) => {
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    let bad = -1, count = 0;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) { count++; if (bad < 0) bad = i; }
    t.equal(count, 0, `${what}: identical${count ? ` (first difference at ${bad}: ${a[bad]} vs ${b[bad]})` : ''}`);
  };
  for (const [hname, h] of hypers) {
    for (const n of [1, 7, 33, 100003]) {
      tidy(() => {
        const p0 = rng.uniform(n, -1, 1);
        const grads = [1, 2, 3, 4, 5].map((s) => rng.normal(n, s === 3 ? 10 : 0.5));
        if (n > 8) grads[1].set([0, 1e18, -1e18, 1e-30, -1e-30, 1e-40, 0, -2]);   // extremes and a denormal
        const run = (device: 'cpu' | 'cuda') => {
          const p = tensor(p0, [n], { device }), m = zeros([n], { device }), v = zeros([n], { device });
          grads.forEach((g0, i) => {
            const g = tensor(g0, [n], { device });
            native.adamw_step(p.id, g.id, m.id, v.id, n, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay,
              1 - h.beta1 ** (i + 1), 1 - h.beta2 ** (i + 1));
          });
          return [p, m, v].map((x) => x.toFloat32Array());
        };
        const [c, g] = [run('cpu'), run('cuda')];
        ['p', 'm', 'v'].forEach((name, k) => sameBits(`${hname} n=${n} ${name}`, c[k], g[k]));
      });
    }
  }
  for (const decay of [0, 0.3, 0.9, 0.9999, 1]) {
    tidy(() => {
      const n = 100003, e0 = rng.uniform(n, -1, 1), ps = [0, 1, 2].map(() => rng.uniform(n, -2, 2));
      const run = (device: 'cpu' | 'cuda') => {
        const e = tensor(e0, [n], { device });
        for (const p0 of ps) native.ema_update(e.id, tensor(p0, [n], { device }).id, n, decay);
        return e.toFloat32Array();
      };
      sameBits(`ema decay=${decay}`, run('cpu'), run('cuda'));
    });
  }
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, before.cpu.bytes, 'native bytes back to baseline');
  t.equal(after.cpu.live, before.cpu.live, 'native storages back to baseline');
  t.equal(after.cuda.bytes, before.cuda.bytes, 'device bytes back to baseline');
  t.equal(after.cuda.live, before.cuda.live, 'device storages back to baseline');
});
