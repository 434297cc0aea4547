// GPU GEMM benchmark (npm run bench:gpu, on a machine with an NVIDIA GPU): dd2's cuBLAS-backed GEMM in
// float32, TF32 and bf16 against torch.matmul on the same card in the same run, with ratios.
// Shapes: 4096^3 and a LlamaGen-B MLP layer (65536 tokens x 768 -> 3072).
import { spawnSync } from 'node:child_process';
import { native, joinRoot } from '../lib/tensor/native.js';

interface Row { shape: string; mode: string; ms: number; tflops: number }

const SHAPES: [string, number, number, number][] = [['4096^3', 4096, 4096, 4096], ['65536x768 @ 768x3072', 65536, 3072, 768]];

export function toBf16Bits(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = u[i];
    out[i] = ((v + 0x7fff + ((v >>> 16) & 1)) >>> 16) & 0xffff;   // round to nearest even (finite inputs)
  }
  return out;
}

function randomHost(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296;
  }
  return a;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function timeCuda(fn: () => void, reps: number): number {
  for (let i = 0; i < 3; i++) fn();
  native.cuda_synchronize();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    native.cuda_synchronize();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ts);
}

function ours(reps: number): Row[] {
  const rows: Row[] = [];
  for (const [name, M, N, K] of SHAPES) {
    const a32 = randomHost(M * K, 1), b32 = randomHost(K * N, 2);
    const alloc = (bytes: number) => native.storage_alloc(1, bytes, false);
    const a = alloc(M * K * 4), b = alloc(K * N * 4), c = alloc(M * N * 4);
    native.storage_write(a, 0, a32);
    native.storage_write(b, 0, b32);
    for (const mode of ['fp32', 'tf32']) {
      native.gemm_cuda_options({ tf32: mode === 'tf32', builtin: false });
      const ms = timeCuda(() => native.gemm(c, a, b, 1, M, N, K, false, false, 0, 0, 0, 1, 0), reps);
      rows.push({ shape: name, mode, ms, tflops: (2 * M * N * K) / ms / 1e9 });
    }
    native.gemm_cuda_options({ tf32: false });
    const ah = alloc(M * K * 2), bh = alloc(K * N * 2), ch = alloc(M * N * 2);
    native.storage_write(ah, 0, toBf16Bits(a32));
    native.storage_write(bh, 0, toBf16Bits(b32));
    const ms = timeCuda(() => native.gemm_bf16!(ch, ah, bh, 1, M, N, K, false, false, 0, 0, 0, 1, 0, true), reps);
    rows.push({ shape: name, mode: 'bf16', ms, tflops: (2 * M * N * K) / ms / 1e9 });
    for (const id of [a, b, c, ah, bh, ch]) native.storage_free(id);
  }
  return rows;
}

function torchRows(reps: number): { rows: Row[]; meta: Record<string, string> } {
  const r = spawnSync('python3', [joinRoot('bench', 'torch', 'gemm.py'), String(reps)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench/torch/gemm.py failed: ${r.stderr.slice(-1500)}`);
  const rows: Row[] = [];
  let meta: Record<string, string> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const o = JSON.parse(line);
    if (o.torch) meta = o; else rows.push(o);
  }
  return { rows, meta };
}

/** Validates the CUDA GEMM against the CPU GEMM on a small odd shape before timing. */
function validate(): string {
  const M = 67, N = 45, K = 129;
  const a32 = randomHost(M * K, 3), b32 = randomHost(K * N, 4);
  const run = (dev: number): Float32Array => {
    const a = native.storage_alloc(dev, M * K * 4, false), b = native.storage_alloc(dev, K * N * 4, false);
    const c = native.storage_alloc(dev, M * N * 4, false);
    native.storage_write(a, 0, a32);
    native.storage_write(b, 0, b32);
    native.gemm(c, a, b, 1, M, N, K, false, false, 0, 0, 0, 1, 0);
    const out = new Float32Array(M * N);
    native.storage_read(c, 0, out);
    for (const id of [a, b, c]) native.storage_free(id);
    return out;
  };
  native.gemm_cuda_options({ tf32: false });
  const g = run(1), h = run(0);
  let worst = 0;
  for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - h[i]) / (Math.abs(h[i]) + 1e-6));
  if (worst > 1e-5) throw new Error(`CUDA GEMM disagrees with the CPU GEMM: max rel err ${worst}`);
  return `validated fp32 CUDA GEMM vs CPU on ${M}x${K}x${N}: max rel err ${worst.toExponential(2)}`;
}

export async function runGpuGemmBench(reps = 20): Promise<void> {
  const info = native.build_info().cuda;
  if (!info.devices) {
    console.log(`gemm (gpu): skipped, no CUDA device (${info.error})`);
    return;
  }
  console.log(validate());
  const mine = ours(reps);
  const { rows: peer, meta } = torchRows(reps);
  console.log(`\nGEMM on ${info.name} — dd2 (${native.gemm_cuda_options()}) vs PyTorch ${meta.torch}, median of ${reps}, ${new Date().toISOString().slice(0, 10)}`);
  console.log('shape                 | mode | dd2 ms  | dd2 TFLOP/s | torch ms | torch TFLOP/s | dd2/torch speed');
  for (const m of mine) {
    const p = peer.find((r) => r.shape === m.shape && r.mode === m.mode);
    console.log(`${m.shape.padEnd(21)} | ${m.mode.padEnd(4)} | ${m.ms.toFixed(3).padStart(7)} | ${m.tflops.toFixed(1).padStart(11)} | ` +
      `${p ? p.ms.toFixed(3).padStart(8) : '     n/a'} | ${p ? p.tflops.toFixed(1).padStart(13) : '          n/a'} | ` +
      `${p ? (p.ms / m.ms).toFixed(3) : 'n/a'}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runGpuGemmBench();
