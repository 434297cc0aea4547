// The AR-diffusion model / generator / guidance network (lib/models/ar-diffusion.ts): fromTeacher copies the
// backbone (no output head, dropout off) and adds a zero-output head (v = 0, so generate(ε) = ε at init);
// features are causal with the one-step shift (changing z_k changes f_i only for i > k); velocity flattens to
// B·N head rows; generate() is ε − v(ε, t = 1, f(ε)) and token i depends on ε_≤i only (token 0 on ε_0 and the
// class); class dropout never applies; clone() is a deep copy; gradients reach both submodules; save/load.
// Letters: B batch, N tokens, C code dim, E width.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { full, tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { backward } from '../../lib/autograd/tape.js';
import { sub } from '../../lib/tensor/ops/elementwise.js';
import { reshape } from '../../lib/tensor/ops/shape.js';
import { resolveGPTConfig } from '../../lib/models/gpt.js';
import { ContinuousGPT } from '../../lib/models/continuous-gpt.js';
import { ARDiffusion, loadARDiffusion, saveARDiffusion } from '../../lib/models/ar-diffusion.js';
import { expectClose, Rng } from '../harness/compare.js';

const base = memory();
const dir = mkdtempSync(join(tmpdir(), 'dd2-ard-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const C = 4, E = 32, N = 6, K = 3;
const teacherCfg = { gpt: resolveGPTConfig({ vocabSize: 12, numClasses: K, gridH: 2, gridW: 3, dim: E, nLayer: 2, nHead: 2, multipleOf: 16 }),
  codeDim: C, inputHidden: 16 };
const headCfg = { width: 24, depth: 2, freqDim: 16 };

function randomize(m: ContinuousGPT | ARDiffusion, seed: number, prefix = '', std = 0.3): void {
  const rng = new Rng(seed);
  const st = new Map<string, Float32Array>();
  for (const [k, v] of m.stateDict()) {
    if (!k.startsWith(prefix)) { st.set(k, v); continue; }
    st.set(k, /norm\.weight|in_ln\.weight/.test(k) ? v.map(() => 1 + 0.2 * (rng.next() - 0.5)) : rng.normal(v.length, std));
  }
  m.loadStateDict(st);
}

/** max |a − b| over rows i (of n) of (B, n, D) arrays. */
function rowDiffs(a: Float32Array, b: Float32Array, B: number, n: number, D: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    let d = 0;
    for (let s = 0; s < B; s++) for (let j = 0; j < D; j++) d = Math.max(d, Math.abs(a[(s * n + i) * D + j] - b[(s * n + i) * D + j]));
    return d;
  });
}

t.test('fromTeacher, zero head, causal shifted features, generate', async (t) => {
  const teacher = new ContinuousGPT(teacherCfg, new Generator(1));
  randomize(teacher, 2);
  const m = ARDiffusion.fromTeacher(teacher, headCfg, new Generator(3));
  t.same(m.cfg.head, { ...headCfg, tokenDim: C, condDim: E }, 'head sized from the teacher (tokenDim C, condDim E)');
  t.same([m.cfg.backbone.gpt.tokenDropoutP, m.cfg.backbone.gpt.residDropoutP, m.cfg.backbone.gpt.ffnDropoutP], [0, 0, 0], 'no dropout');
  t.equal(m.cfg.backbone.gpt.classDropoutProb, teacher.cfg.gpt.classDropoutProb, 'null-class row kept');
  const names = [...m.stateShapes().keys()];
  t.notOk(names.includes('backbone.output.weight'), 'the backbone has no output head');
  t.ok(names.includes('head.final_layer.linear.weight') && names.includes('backbone.tok_mlp.0.weight'), 'backbone.* and head.* submodules');
  const ts = teacher.stateDict(), ms = m.stateDict();
  t.ok([...ts].filter(([k]) => k !== 'output.weight').every(([k, v]) => ms.get(`backbone.${k}`)!.every((x, i) => x === v[i])),
    'every teacher weight but the output head copied bit for bit');
  t.ok(m.training && !m.backbone.cls_embedding.training, 'training mode, but the class embedder stays in eval (no class dropout)');

  const B = 2, rng = new Rng(4);
  const labels = Int32Array.from([0, 2]);
  const eps = rng.normal(B * N * C);
  tidy(() => {
    const lab = tensor(labels, [B]), e = tensor(eps, [B, N, C]);
    const x = m.generate(lab, e);
    t.same(x.shape, [B, N, C], 'generate: (B, N, C)');
    t.same([...x.toFloat32Array()], [...eps], 'a fresh head has v = 0, so generate(ε) = ε at init');
  });

  randomize(m, 5, 'head.');
  m.eval();
  noGrad(() => tidy(() => {
    const lab = tensor(labels, [B]);
    const f = m.features(lab, tensor(eps, [B, N, C]));
    t.same(f.shape, [B, N, E], 'features (B, N, E)');
    // Backbone input [cls, z_0..z_{N-2}]: f equals the backbone's features over that shifted sequence.
    const direct = m.backbone.features(lab, null);
    t.same(direct.shape, [B, 1, E], 'class-only backbone pass');
    t.same([...f.toFloat32Array().subarray(0, E)], [...direct.toFloat32Array().subarray(0, E)], 'row 0 = the class token\'s feature');
    const k = 2, eps2 = Float32Array.from(eps);
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) eps2[(b * N + k) * C + c] += 0.7;
    const f2 = m.features(lab, tensor(eps2, [B, N, C]));
    const df = rowDiffs(f.toFloat32Array(), f2.toFloat32Array(), B, N, E);
    t.ok(df.slice(0, k + 1).every((d) => d === 0) && df.slice(k + 1).every((d) => d > 1e-4),
      `changing z_${k} changes f_i only for i > ${k} (max |Δf_i| = ${df.map((d) => d.toExponential(1)).join(', ')})`);

    const x = m.generate(lab, tensor(eps, [B, N, C])), x2 = m.generate(lab, tensor(eps2, [B, N, C]));
    const dx = rowDiffs(x.toFloat32Array(), x2.toFloat32Array(), B, N, C);
    t.ok(dx.slice(0, k).every((d) => d === 0) && dx.slice(k).every((d) => d > 1e-4),
      `changing ε_${k} changes x_i only for i >= ${k} (max |Δx_i| = ${dx.map((d) => d.toExponential(1)).join(', ')})`);
    const eps3 = Float32Array.from(eps);
    for (let i = C; i < eps3.length; i++) if (Math.floor(i / C) % N !== 0) eps3[i] = rng.normal(1)[0];
    const x3 = m.generate(lab, tensor(eps3, [B, N, C]));
    t.equal(rowDiffs(x.toFloat32Array(), x3.toFloat32Array(), B, N, C)[0], 0, 'token 0 is independent of ε_1..ε_{N-1}');

    // generate = ε − head(ε, t = 1, f) row by row; t really is 1 (t = 0.5 gives something else).
    const v1 = m.head.forward(tensor(eps, [B * N, C]), full([B * N], 1), reshape(f, [B * N, E]));
    expectClose(t, 'generate = ε − v(ε, 1, f)', x.toFloat32Array(), sub(tensor(eps, [B * N, C]), v1).toFloat32Array(), { atol: 0, rtol: 0 });
    const vv = m.velocity(tensor(eps, [B, N, C]), full([B, N], 1), f);
    expectClose(t, 'velocity flattens to B·N head rows', vv.toFloat32Array(), v1.toFloat32Array(), { atol: 0, rtol: 0 });
    const vh = m.velocity(tensor(eps, [B, N, C]), full([B, N], 0.5), f);
    t.ok(Math.max(...rowDiffs(vh.toFloat32Array(), v1.toFloat32Array(), B, N, C)) > 1e-3, 'the head depends on t');
  }));
  t.throws(() => tidy(() => m.features(tensor(labels, [B]), tensor(rng.normal(B * 7 * C), [B, 7, C]))), /1 <= n <= 6/);
  t.throws(() => tidy(() => m.velocity(tensor(eps, [B, N, C]), full([B, N - 1], 1), full([B, N, E], 0))), /must be \(2, 6\)/);
  teacher.dispose();
  m.dispose();
});

t.test('training: no class dropout needed, gradients reach backbone and head; clone; save/load', async (t) => {
  const teacher = new ContinuousGPT(teacherCfg, new Generator(1));
  randomize(teacher, 2);
  const m = ARDiffusion.fromTeacher(teacher, headCfg, new Generator(3));
  teacher.dispose();
  randomize(m, 5, 'head.');
  m.train();
  const B = 2, rng = new Rng(8);
  const labels = Int32Array.from([1, 0]), z = rng.normal(B * N * C), xt = rng.normal(B * N * C), tt = rng.uniform(B * N, 0, 1);
  const run = (mm: ARDiffusion): Float32Array => tidy(() => {
    const lab = tensor(labels, [B]);
    return mm.velocity(tensor(xt, [B, N, C]), tensor(tt, [B, N]), mm.features(lab, tensor(z, [B, N, C]))).toFloat32Array();
  });
  tidy(() => {
    const lab = tensor(labels, [B]);
    const v = m.velocity(tensor(xt, [B, N, C]), tensor(tt, [B, N]), m.features(lab, tensor(z, [B, N, C])));
    backward(v, tensor(rng.normal(v.size), v.shape));
  });
  const gnorm = (prefix: string): number => m.namedParameters().filter(([k]) => k.startsWith(prefix))
    .reduce((s, [, p]) => s + (p.grad ? p.grad.toFloat32Array().reduce((a, g) => a + g * g, 0) : 0), 0);
  t.ok(gnorm('backbone.layers.') > 0 && gnorm('backbone.tok_mlp.') > 0 && gnorm('head.') > 0,
    `gradients in training mode without a generator: backbone ${gnorm('backbone.').toExponential(2)}, head ${gnorm('head.').toExponential(2)}`);
  m.zeroGrad();

  const c = m.clone();
  t.equal(c.training, m.training, 'clone keeps the mode');
  t.same([...run(c)], [...run(m)], 'clone computes the same velocities');
  randomize(c, 9, 'head.final_layer.');
  t.notSame([...run(c)], [...run(m)], 'changing the clone leaves the original alone (deep copy)');
  c.dispose();

  const path = join(dir, 'gen.safetensors');
  saveARDiffusion(path, m, { step: 3, role: 'generator', tokenizer: '/x/vq.safetensors' });
  const { model: r, meta } = loadARDiffusion(path);
  t.same([meta.kind, meta.role, meta.step, meta.tokenizer], ['ar-diffusion', 'generator', 3, '/x/vq.safetensors'], 'meta round trip');
  t.same(r.cfg, m.cfg, 'config round trip');
  m.eval();
  t.same([...run(r)], [...run(m)], 'same velocities after the round trip');
  t.throws(() => new ARDiffusion({ backbone: teacherCfg, head: { ...headCfg, tokenDim: C + 1, condDim: E } }, new Generator(0)),
    /must equal the backbone's code dim/);
  r.dispose();
  m.dispose();
});

t.test('no leaked tensors', async (t) => {
  const now = memory();
  t.equal(now.tensors, base.tensors, `live tensors ${now.tensors} == ${base.tensors} at start`);
});
