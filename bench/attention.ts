// Attention benchmark (not a test): tokens/s and GFLOP/s of the fused attention op against the composite
// (matmul + softmax) path, forward only and forward + backward, with warm-up and the median of a few
// runs. Shapes: a LlamaGen-like causal one scaled for a 2-core CPU, and a VAR-like block-causal one.
// Letters: B batch, H heads, T tokens, D head dim. GFLOP/s counts useful work only: 4·D flops per
// visible (query, key) pair forward, 2.5x that for the backward (dq, dk, dv, dP; not recomputation).
// Env: DD2_ATTN_BENCH="B,H,T,D" (the causal shape, default 4,12,256,64), DD2_BENCH_REPS (default 7),
// DD2_BENCH_THREADS (only when run alone). Run alone: node dist/bench/attention.js
import { pathToFileURL } from 'node:url';
import { attention, attentionComposite, type AttentionOptions } from '../lib/tensor/ops/attention.js';
import { tensor } from '../lib/tensor/create.js';
import { noGrad, tidy } from '../lib/tensor/engine.js';
import { backward } from '../lib/autograd/tape.js';
import { native } from '../lib/tensor/native.js';

interface Shape { label: string; B: number; H: number; T: number; D: number; opts: AttentionOptions; pairs: number }

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median seconds of `reps` timed calls after two warm-up calls. */
function time(fn: () => void, reps: number): number {
  fn();
  fn();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1e3);
  }
  return median(ts);
}

function causalShape(): Shape {
  const [B, H, T, D] = (process.env.DD2_ATTN_BENCH ?? '4,12,256,64').split(',').map(Number);
  return { label: `causal B=${B} H=${H} T=${T} D=${D}`, B, H, T, D, opts: { causal: true }, pairs: (T * (T + 1)) / 2 };
}

function varShape(): Shape {
  const sides = [1, 2, 3, 4, 5, 6, 8, 10];   // 255 tokens, level = scale index
  const levels = sides.flatMap((s, r) => Array<number>(s * s).fill(r));
  const T = levels.length;
  let pairs = 0;
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) if (levels[j] <= levels[i]) pairs++;
  return { label: `VAR levels B=2 H=12 T=${T} D=64`, B: 2, H: 12, T, D: 64, opts: { levels }, pairs };
}

type AttnFn = typeof attention;

interface Row { shape: string; path: string; mode: string; ms: number; tokens: number; gflops: number }

function bench(sh: Shape, path: string, fn: AttnFn, reps: number): Row[] {
  const { B, H, T, D } = sh;
  const n = B * H * T * D;
  const [q, k, v] = [1, 2, 3].map((seed) => {
    const x = tensor(randn(n, seed), [B, H, T, D]);
    x.requiresGrad = true;
    return x;
  });
  const dy = tensor(randn(n, 4), [B, H, T, D]);
  try {
    const fwd = time(() => tidy(() => { noGrad(() => fn(q, k, v, sh.opts)); }), reps);
    const fb = time(() => tidy(() => {
      backward(fn(q, k, v, sh.opts), dy);
      for (const x of [q, k, v]) { x.grad?.dispose(); x.grad = null; }
    }), reps);
    const flopsFwd = 4 * D * sh.pairs * B * H;
    const row = (mode: string, s: number, flops: number): Row =>
      ({ shape: sh.label, path, mode, ms: s * 1e3, tokens: (B * T) / s, gflops: flops / s / 1e9 });
    return [row('forward', fwd, flopsFwd), row('fwd+bwd', fb, 3.5 * flopsFwd)];
  } finally {
    for (const x of [q, k, v, dy]) x.dispose();
  }
}

/** Largest |fused - composite| of the forward output (a sanity check printed with the table). */
function agreement(sh: Shape): number {
  const { B, H, T, D } = sh;
  const n = B * H * T * D;
  return tidy(() => noGrad(() => {
    const xs = [randn(n, 5), randn(n, 6), randn(n, 7)].map((a) => tensor(a, [B, H, T, D]));
    const a = attention(xs[0], xs[1], xs[2], sh.opts).toFloat32Array();
    const b = attentionComposite(xs[0], xs[1], xs[2], sh.opts).toFloat32Array();
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    return m;
  }));
}

export async function runAttentionBench(): Promise<void> {
  const reps = Number(process.env.DD2_BENCH_REPS ?? 7);
  console.log(`attention kernels: ${native.attention_isa()}, threads ${native.num_threads()}, ` +
    `gemm ${native.build_info().blas}, median of ${reps} after 2 warm-up runs`);
  const rows: Row[] = [];
  for (const sh of [causalShape(), varShape()]) {
    rows.push(...bench(sh, 'fused', attention, reps), ...bench(sh, 'composite', attentionComposite, reps));
    console.log(`${sh.label}: max |fused - composite| forward = ${agreement(sh).toExponential(2)}`);
  }
  console.log('| shape | path | mode | ms | tokens/s | GFLOP/s | speed-up |');
  console.log('|-------|------|------|---:|---------:|--------:|---------:|');
  for (const r of rows) {
    const ref = rows.find((x) => x.shape === r.shape && x.mode === r.mode && x.path === 'composite')!;
    console.log(`| ${r.shape} | ${r.path} | ${r.mode} | ${r.ms.toFixed(1)} | ${r.tokens.toFixed(0)} | ` +
      `${r.gflops.toFixed(1)} | ${(ref.ms / r.ms).toFixed(2)}x |`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  native.set_num_threads(Number(process.env.DD2_BENCH_THREADS ?? 2));
  runAttentionBench().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
