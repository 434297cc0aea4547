// GEMM benchmark: OpenBLAS's cblas_sgemm called from C (native/bench/gemm-openblas.c, compiled here into
// build/bench/) against native.gemm through the addon with the 'openblas' and 'builtin' backends, at the
// same square sizes and thread count, in one process tree (so both see the same OPENBLAS_CORETYPE).
// Each size is first checked (builtin vs openblas), then timed: warm-up, then best/median of samples.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { native, joinRoot } from '../lib/tensor/native.js';

export interface GemmBenchOptions { sizes: number[]; threads: number; reps: number; rounds: number }
export interface GemmRow {
  size: number; c: number | null; addonBlas: number | null; builtin: number; relErr: number | null;
}
export interface GemmBenchResult {
  coretypeEnv: string; cConfig: string | null; addonBlas: string | null; builtinIsa: string; threads: number;
  rows: GemmRow[]; note: string[];
}

const OB_SRC = 'native/bench/gemm-openblas.c';

/** Compiles the C peer if needed; returns its path or a reason it is unavailable. */
export function buildCPeer(): { bin?: string; why?: string } {
  const src = joinRoot(OB_SRC), outDir = joinRoot('build/bench'), bin = joinRoot('build/bench/gemm-openblas');
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return { bin };
  mkdirSync(outDir, { recursive: true });
  const cc = process.env.CC || 'cc';
  const inc = ['/usr/include/openblas', '/usr/include/x86_64-linux-gnu/openblas-pthread'].filter(existsSync);
  const args = ['-O2', '-o', bin, src, ...inc.map((d) => `-I${d}`), '-lopenblas'];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error) return { why: `no C compiler (${cc}: ${r.error.message})` };
  if (r.status !== 0) return { why: `${cc} ${args.join(' ')} failed (OpenBLAS headers/library missing?):\n${r.stderr}` };
  return { bin };
}

interface CLine { config?: string; core?: string; size?: number; best_gflops?: number; median_gflops?: number }

/** Runs the C peer once over all sizes; returns config and best GFLOP/s per size. */
export function runCPeer(bin: string, sizes: number[], threads: number, reps: number):
    { config: string; gflops: Map<number, number> } {
  const r = spawnSync(bin, [String(threads), String(reps), ...sizes.map(String)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr || r.error?.message}`);
  let config = '';
  const gflops = new Map<number, number>();
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const j = JSON.parse(line) as CLine;
    if (j.config) config = `${j.config} (core ${j.core})`;
    if (j.size && j.best_gflops) gflops.set(j.size, j.best_gflops);
  }
  return { config, gflops };
}

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = (x >>> 8) / 16777216 - 0.5;
  }
  return a;
}

/** Times native.gemm (n x n x n, NN, alpha 1, beta 0) with the current backend; best GFLOP/s. */
function timeAddon(ia: number, ib: number, ic: number, n: number, reps: number): number {
  const call = (): void => native.gemm(ic, ia, ib, 1, n, n, n, false, false, n * n, n * n, n * n, 1, 0);
  const flop = 2 * n * n * n;
  const w0 = performance.now();
  for (let i = 0; i < 2 || performance.now() - w0 < 200; i++) call();
  let inner = 1;
  while (inner < 1024 && flop * inner < 2e9) inner *= 2;
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) call();
    best = Math.min(best, (performance.now() - t0) / inner);
  }
  return flop / (best * 1e-3) * 1e-9;
}

/** Result of builtin vs openblas on the same inputs: max |diff| / max |openblas|. */
function crossCheck(ia: number, ib: number, ic: number, n: number): number {
  const out = (be: string): Float32Array => {
    native.gemm_set_backend(be);
    native.gemm(ic, ia, ib, 1, n, n, n, false, false, n * n, n * n, n * n, 1, 0);
    const r = new Float32Array(n * n);
    native.storage_read(ic, 0, r);
    return r;
  };
  const x = out('builtin'), y = out('openblas');
  let d = 0, m = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return m > 0 ? d / m : d;
}

const f1 = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(1));
const f2 = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(2));

export function formatGemmTable(res: GemmBenchResult): string {
  const head = ['size', 'C OpenBLAS GFLOP/s', 'addon+OpenBLAS GFLOP/s', 'ratio', 'addon builtin GFLOP/s',
    'ratio vs C OpenBLAS', 'max rel err'];
  const ratio = (x: number | null, c: number | null): string => f2(x !== null && c ? x / c : null);
  const body = res.rows.map((r) => [String(r.size), f1(r.c), f1(r.addonBlas), ratio(r.addonBlas, r.c),
    f1(r.builtin), ratio(r.builtin, r.c), r.relErr === null ? 'n/a' : r.relErr.toExponential(1)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/** The whole GEMM comparison in this process (OPENBLAS_CORETYPE is whatever this process started with). */
export async function runGemmBench(opts: GemmBenchOptions): Promise<GemmBenchResult> {
  const { sizes, threads, reps, rounds } = opts;
  const note: string[] = [];
  const load0 = loadavg()[0];
  native.set_num_threads(threads);   // our pool and OpenBLAS's thread count together
  let addonBlas: string | null = null;
  try {
    native.gemm_set_backend('openblas');
    addonBlas = native.build_info().blas;
  } catch (e) {
    note.push(`addon+OpenBLAS skipped: ${(e as Error).message}`);
  }
  native.gemm_set_backend('builtin');
  const builtinIsa = native.build_info().blas;
  const peer = buildCPeer();
  if (!peer.bin) note.push(`C OpenBLAS peer skipped: ${peer.why}`);
  const cBest = new Map<number, number>();
  let cConfig: string | null = null;
  const best = new Map<string, number>();
  const relErr = new Map<number, number>();
  const max = (k: string, v: number): void => { best.set(k, Math.max(best.get(k) ?? 0, v)); };
  // This machine has slow and fast phases (other tenants, clock changes) lasting seconds, so each
  // round times the C peer, the addon with OpenBLAS and the built-in kernel back to back per size,
  // and the table keeps each one's best over the rounds.
  const bufs = new Map<number, [number, number, number]>();
  try {
    for (const n of sizes) {
      const ids: [number, number, number] = [native.storage_alloc(0, n * n * 4, false),
        native.storage_alloc(0, n * n * 4, false), native.storage_alloc(0, n * n * 4, true)];
      bufs.set(n, ids);
      native.storage_write(ids[0], 0, fill(n * n, 1 + n));
      native.storage_write(ids[1], 0, fill(n * n, 2 + n));
      if (addonBlas) relErr.set(n, crossCheck(...ids, n));
    }
    for (let round = 0; round < rounds; round++) {
      for (const n of sizes) {
        if (peer.bin) {
          const c = runCPeer(peer.bin, [n], threads, reps);
          cConfig = c.config;
          cBest.set(n, Math.max(cBest.get(n) ?? 0, c.gflops.get(n) ?? 0));
        }
        const [ia, ib, ic] = bufs.get(n)!;
        if (addonBlas) {
          native.gemm_set_backend('openblas');
          max(`blas ${n}`, timeAddon(ia, ib, ic, n, reps));
        }
        native.gemm_set_backend('builtin');
        max(`builtin ${n}`, timeAddon(ia, ib, ic, n, reps));
      }
    }
  } finally {
    for (const ids of bufs.values()) for (const id of ids) native.storage_free(id);
  }
  native.gemm_set_backend('auto');
  note.push(`1-min load average: ${load0.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after ` +
    '(other processes on the machine make these numbers noisy)');
  const rows = sizes.map((n) => ({ size: n, c: cBest.get(n) ?? null, addonBlas: best.get(`blas ${n}`) ?? null,
    builtin: best.get(`builtin ${n}`) ?? 0, relErr: relErr.get(n) ?? null }));
  for (const r of rows)
    if (r.relErr !== null && !(r.relErr < 1e-4)) note.push(`WARNING: size ${r.size}: builtin and openblas disagree (max rel err ${r.relErr})`);
  if (cConfig && addonBlas && !addonBlas.includes(cConfig.split(' (core')[0]))
    note.push(`WARNING: the addon loaded a different OpenBLAS build than the C peer: ${addonBlas} vs ${cConfig}`);
  return { coretypeEnv: process.env.OPENBLAS_CORETYPE ?? '', cConfig, addonBlas, builtinIsa, threads, rows, note };
}
