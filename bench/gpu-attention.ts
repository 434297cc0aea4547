// GPU attention benchmark (not a test): our bf16 tensor-core kernels (attention_forward_bf16 /
// attention_backward_bf16) against PyTorch's scaled_dot_product_attention backends (bench/torch/attention.py,
// run as a child process), forward and forward + backward, at a LlamaGen-like causal shape and a VAR-like
// block-causal one. Letters: B batch, H heads, T tokens, D head dim. Storages are allocated directly (bf16
// = the upper 16 bits of float32, rounded to nearest even). Times are the median over reps of the mean of
// `inner` back-to-back calls between cuda_synchronize calls, after warm-up. TFLOP/s count 4·D flops per
// visible (query, key) pair forward and 3.5× that forward + backward (the flash-attention convention).
// Before timing, the bf16 kernels are checked against our float32 cuda kernels on small cases.
// Env: DD2_BENCH_REPS (default 15), DD2_ATTN_NO_TORCH=1 (skip PyTorch). Run: node dist/bench/gpu-attention.js
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { native } from '../lib/tensor/native.js';

const CUDA = 1;

interface Shape {
  name: string; B: number; H: number; T: number; D: number; levels: number[] | null; causal: boolean;
  Tk?: number;   // keys, when not T (causal only; the first T - Tk queries then see nothing)
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

function randn(n: number, seed: number): Float32Array {
  const u = lcg(seed), a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())), th = 2 * Math.PI * u();
    a[i] = r * Math.cos(th);
    if (i + 1 < n) a[i + 1] = r * Math.sin(th);
  }
  return a;
}

/** float32 -> bf16 bits, round to nearest even (NaN kept quiet). */
function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length), out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const b = u[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

function fromBf16(h: Uint16Array): Float32Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}

const live: number[] = [];
function upload(data: ArrayBufferView): number {
  const id = native.storage_alloc(CUDA, data.byteLength, false);
  native.storage_write(id, 0, data);
  live.push(id);
  return id;
}
function alloc(bytes: number): number {
  const id = native.storage_alloc(CUDA, bytes, false);
  live.push(id);
  return id;
}
function freeAll(): void {
  while (live.length) native.storage_free(live.pop()!);
}
function read<T extends Float32Array | Uint16Array>(id: number, out: T): T {
  native.storage_read(id, 0, out);
  return out;
}

function varLevels(scales: number[]): number[] {
  return scales.flatMap((s, r) => Array<number>(s * s).fill(r));
}

function visiblePairs(sh: Shape): number {
  const T = sh.T;
  if (sh.levels) {
    let n = 0;
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) if (sh.levels[j] <= sh.levels[i]) n++;
    return n;
  }
  return sh.causal ? (T * (T + 1)) / 2 : T * T;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median ms per call of fn (inner calls per timed rep) after warm-up. */
function timeMs(fn: () => void, reps: number, inner: number): number {
  for (let i = 0; i < 3; i++) fn();
  native.cuda_synchronize();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    native.cuda_synchronize();
    ts.push((performance.now() - t0) / inner);
  }
  return median(ts);
}

interface Ids {
  q: number; k: number; v: number; o: number; lse: number; dout: number; dq: number; dk: number; dv: number;
  lq: number; lk: number;
}

/** Device buffers for a shape: bf16 q, k, v, dout from the given host data (or random), outputs, levels. */
const keys = (sh: Shape): number => sh.Tk ?? sh.T;
const sizes = (sh: Shape): number[] => [sh.T, keys(sh), keys(sh), sh.T].map((t) => sh.B * sh.H * t * sh.D);

function buffers(sh: Shape, host?: Uint16Array[]): Ids {
  const [nq, nk] = sizes(sh), rows = sh.B * sh.H * sh.T;
  const data = host ?? sizes(sh).map((n, i) => toBf16(randn(n, i + 1)));
  const lv = sh.levels ? upload(Int32Array.from(sh.levels)) : -1;
  return {
    q: upload(data[0]), k: upload(data[1]), v: upload(data[2]), dout: upload(data[3]),
    o: alloc(2 * nq), lse: alloc(4 * rows), dq: alloc(2 * nq), dk: alloc(2 * nk), dv: alloc(2 * nk), lq: lv, lk: lv,
  };
}

function fwd(sh: Shape, b: Ids): void {
  native.attention_forward_bf16(b.o, b.lse, b.q, b.k, b.v, sh.B * sh.H, sh.T, keys(sh), sh.D, 1 / Math.sqrt(sh.D),
    sh.causal, b.lq, b.lk);
}
function bwd(sh: Shape, b: Ids): void {
  native.attention_backward_bf16(b.dq, b.dk, b.dv, b.dout, b.q, b.k, b.v, b.o, b.lse, sh.B * sh.H, sh.T, keys(sh),
    sh.D, 1 / Math.sqrt(sh.D), sh.causal, b.lq, b.lk);
}

/** bf16 kernels vs the float32 cuda kernels on the same (bf16-rounded) inputs: max |err| / max |ref|. */
function check(sh: Shape): { name: string; errs: Record<string, number>; ok: boolean } {
  const [n, nk] = sizes(sh), rows = sh.B * sh.H * sh.T, BH = sh.B * sh.H, sc = 1 / Math.sqrt(sh.D), Tk = keys(sh);
  const host = sizes(sh).map((m, i) => toBf16(randn(m, 11 + i)));
  const b = buffers(sh, host);
  fwd(sh, b);
  bwd(sh, b);
  const f = host.map((h) => upload(fromBf16(h)));
  const [o32, lse32, dq32, dk32, dv32] = [n, rows, n, nk, nk].map((m) => alloc(4 * m));
  native.attention_forward(o32, lse32, f[0], f[1], f[2], BH, sh.T, Tk, sh.D, sc, sh.causal, b.lq, b.lk);
  native.attention_backward(dq32, dk32, dv32, f[3], f[0], f[1], f[2], o32, lse32, BH, sh.T, Tk, sh.D, sc, sh.causal,
    b.lq, b.lk);
  const rel = (got: Float32Array, want: Float32Array): number => {
    let e = 0, m = 0;
    for (let i = 0; i < got.length; i++) {
      const w = Number.isFinite(want[i]) ? want[i] : 0, g = got[i] === want[i] ? w : got[i];
      e = Math.max(e, Math.abs(g - w) || (Number.isNaN(g) ? Infinity : 0));
      m = Math.max(m, Math.abs(w));
    }
    return e / Math.max(m, 1e-30);
  };
  const errs: Record<string, number> = {
    o: rel(fromBf16(read(b.o, new Uint16Array(n))), read(o32, new Float32Array(n))),
    lse: rel(read(b.lse, new Float32Array(rows)), read(lse32, new Float32Array(rows))),
    dq: rel(fromBf16(read(b.dq, new Uint16Array(n))), read(dq32, new Float32Array(n))),
    dk: rel(fromBf16(read(b.dk, new Uint16Array(nk))), read(dk32, new Float32Array(nk))),
    dv: rel(fromBf16(read(b.dv, new Uint16Array(nk))), read(dv32, new Float32Array(nk))),
  };
  freeAll();
  // bf16 rounding of P, dS and the outputs (2^-9 relative each): measured errors are reported; 2e-2 of the
  // largest reference value flags a broken kernel, not rounding.
  const ok = Object.values(errs).every((e) => e < 2e-2);
  return { name: sh.name, errs, ok };
}

interface TorchRow { shape: string; backend: string; fwd_ms?: number; fwdbwd_ms?: number; error?: string }

function runTorch(shapes: Shape[], reps: number): { device: string; torch: string; results: TorchRow[] } | null {
  if (process.env.DD2_ATTN_NO_TORCH === '1') return null;
  const cfg = {
    reps,
    shapes: shapes.map((s) => ({ name: s.name, B: s.B, H: s.H, T: s.T, D: s.D, mask: s.levels ? 'levels' : 'causal',
      levels: s.levels })),
  };
  const r = spawnSync('python3', ['bench/torch/attention.py', JSON.stringify(cfg)], { encoding: 'utf8',
    maxBuffer: 1 << 24 });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last);
  } catch {
    console.log(`PyTorch run failed (status ${r.status}): ${(r.stderr ?? '').slice(-2000)}`);
    return null;
  }
}

export function runGpuAttentionBench(): void {
  const reps = Number(process.env.DD2_BENCH_REPS ?? 15);
  const info = native.build_info();
  console.log(`device: ${JSON.stringify(info.cuda)}`);
  const checks: Shape[] = [
    { name: 'causal B=2 H=3 T=200 D=64', B: 2, H: 3, T: 200, D: 64, levels: null, causal: true },
    { name: 'none B=1 H=2 T=77 D=64', B: 1, H: 2, T: 77, D: 64, levels: null, causal: false },
    { name: 'VAR 1..8 B=2 H=2 T=155 D=64', B: 2, H: 2, T: 155, D: 64, levels: varLevels([1, 2, 3, 4, 5, 6, 8]),
      causal: false },
    { name: 'causal B=1 H=2 T=130 D=32', B: 1, H: 2, T: 130, D: 32, levels: null, causal: true },
    { name: 'causal B=1 H=2 T=130 D=96', B: 1, H: 2, T: 130, D: 96, levels: null, causal: true },
    { name: 'VAR 1..6 B=1 H=2 T=91 D=128', B: 1, H: 2, T: 91, D: 128, levels: varLevels([1, 2, 3, 4, 5, 6]),
      causal: false },
    // More query tiles than resident blocks (blocks take several items), and items with no visible key.
    { name: 'causal B=64 H=16 T=200 D=64', B: 64, H: 16, T: 200, D: 64, levels: null, causal: true },
    { name: 'VAR 1..8 B=32 H=8 T=155 D=64', B: 32, H: 8, T: 155, D: 64, levels: varLevels([1, 2, 3, 4, 5, 6, 8]),
      causal: false },
    { name: 'causal Tq=300 Tk=100 B=32 H=8 D=64', B: 32, H: 8, T: 300, Tk: 100, D: 64, levels: null, causal: true },
  ];
  let allOk = true;
  for (const c of checks) {
    const r = check(c);
    allOk &&= r.ok;
    console.log(`check bf16 vs float32 kernel, ${r.name}: ${r.ok ? 'ok' : 'FAILED'} ` +
      Object.entries(r.errs).map(([k, e]) => `${k} ${e.toExponential(2)}`).join(', ') + ' (max|err| / max|ref|)');
  }
  if (!allOk) process.exitCode = 1;

  const shapes: Shape[] = [
    { name: 'causal B=256 H=12 T=256 D=64', B: 256, H: 12, T: 256, D: 64, levels: null, causal: true },
    { name: 'VAR B=64 H=16 T=680 D=64', B: 64, H: 16, T: 680, D: 64,
      levels: varLevels([1, 2, 3, 4, 5, 6, 8, 10, 13, 16]), causal: false },
  ];
  const ours: { fwd: number; fb: number }[] = [];
  for (const sh of shapes) {
    const b = buffers(sh);
    const f = timeMs(() => fwd(sh, b), reps, 5);
    const fb = timeMs(() => { fwd(sh, b); bwd(sh, b); }, reps, 5);
    ours.push({ fwd: f, fb });
    freeAll();
  }
  const torch = runTorch(shapes, reps);
  if (torch) console.log(`PyTorch ${torch.torch} on ${torch.device}`);
  const tflops = (sh: Shape, ms: number, mul: number): string =>
    ((4 * sh.D * visiblePairs(sh) * sh.B * sh.H * mul) / (ms * 1e-3) / 1e12).toFixed(0);
  console.log('| shape | mode | ours ms | ours TFLOP/s | fastest PyTorch backend | its ms | its TFLOP/s | ' +
    'ours/PyTorch speed |');
  console.log('|---|---|---:|---:|---|---:|---:|---:|');
  shapes.forEach((sh, s) => {
    for (const [mode, key, mul] of [['forward', 'fwd_ms', 1], ['fwd+bwd', 'fwdbwd_ms', 3.5]] as const) {
      const mine = mode === 'forward' ? ours[s].fwd : ours[s].fb;
      const rows = (torch?.results ?? []).filter((r) => r.shape === sh.name && r[key] !== undefined);
      const best = rows.sort((a, b) => a[key]! - b[key]!)[0];
      const ref = best ? `| ${best.backend} | ${best[key]!.toFixed(3)} | ${tflops(sh, best[key]!, mul)} | ` +
        `${(best[key]! / mine).toFixed(2)}x |` : '| - | - | - | - |';
      console.log(`| ${sh.name} | ${mode} | ${mine.toFixed(3)} | ${tflops(sh, mine, mul)} ${ref}`);
    }
  });
  if (torch) {
    console.log('PyTorch backends (ms, fwd / fwd+bwd):');
    for (const r of torch.results) {
      console.log(`  ${r.shape} ${r.backend}: ` +
        (r.error ? `unavailable (${r.error})` : `${r.fwd_ms!.toFixed(3)} / ${r.fwdbwd_ms!.toFixed(3)}`));
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    runGpuAttentionBench();
  } catch (e) {
    console.error(e);
    process.exitCode = 1;
  }
}
