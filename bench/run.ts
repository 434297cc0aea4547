// Benchmark entry point (`npm run bench` = node dist/bench/run.js). GEMM first: OPENBLAS_CORETYPE is read
// when OpenBLAS loads, so each core setting runs in a child process of this script (the C peer and the
// addon share that child's environment): the library's default core, and the fastest of a few forced
// ones (picked with the C peer at 1024). Then the attention bench (bench/attention.ts), if present.
// Env: DD2_BENCH_SIZES=256,512 DD2_BENCH_THREADS=2 DD2_BENCH_REPS=3; OPENBLAS_CORETYPE set = that core only.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildCPeer, formatGemmTable, runCPeer, runGemmBench, type GemmBenchResult } from './gemm.js';
import { native } from '../lib/tensor/native.js';

const CHILD_FLAG = '--gemm-child';
const RESULT_TAG = '@@gemm-result ';
const CANDIDATE_CORES = ['SkylakeX', 'Cooperlake', 'Haswell'];

const sizes = (process.env.DD2_BENCH_SIZES ?? '256,512,1024,2048').split(',').map(Number).filter((n) => n > 0);
const threads = Number(process.env.DD2_BENCH_THREADS ?? 2);
const reps = Number(process.env.DD2_BENCH_REPS ?? 3);

function printResult(title: string, r: GemmBenchResult): void {
  console.log(`\n=== GEMM ${title}: ${r.threads} threads, OPENBLAS_CORETYPE=${r.coretypeEnv || '(unset)'}`);
  console.log(`C peer:  ${r.cConfig ?? 'n/a'}`);
  console.log(`addon:   ${r.addonBlas ?? 'OpenBLAS not loaded'}`);
  console.log(`builtin: ${r.builtinIsa}`);
  console.log(formatGemmTable(r));
  for (const n of r.note) console.log(n);
}

/** Runs the GEMM bench in a child with OPENBLAS_CORETYPE = core (null: unset); returns its result. */
function gemmChild(core: string | null): Promise<GemmBenchResult | null> {
  const env = { ...process.env };
  if (core) env.OPENBLAS_CORETYPE = core;
  else delete env.OPENBLAS_CORETYPE;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), CHILD_FLAG],
      { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '', result: GemmBenchResult | null = null;
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith(RESULT_TAG)) result = JSON.parse(line.slice(RESULT_TAG.length)) as GemmBenchResult;
        else console.log(line);
      }
    });
    p.on('close', (code) => {
      if (code !== 0) console.log(`GEMM bench child (OPENBLAS_CORETYPE=${core ?? 'unset'}) exited with ${code}`);
      resolve(result);
    });
  });
}

/** Probes candidate cores with the C peer at 1024 (or the largest size <= 1024); returns the fastest. */
function pickBestCore(): string | null {
  const peer = buildCPeer();
  if (!peer.bin) {
    console.log(`cannot probe OpenBLAS core types: ${peer.why}`);
    return null;
  }
  const n = Math.max(...sizes.filter((s) => s <= 1024), Math.min(...sizes));
  let best: string | null = null, bestG = 0;
  const saved = process.env.OPENBLAS_CORETYPE;
  for (const core of CANDIDATE_CORES) {
    process.env.OPENBLAS_CORETYPE = core;   // inherited by the spawned peer only
    try {
      const r = runCPeer(peer.bin, [n], threads, 3);
      const g = r.gflops.get(n) ?? 0;
      const took = r.config.includes(` ${core} `) || r.config.endsWith(`core ${core})`);
      console.log(`probe OPENBLAS_CORETYPE=${core}: ${g.toFixed(1)} GFLOP/s at ${n}, ${r.config}` +
        (took ? '' : '  (core not applied, ignored)'));
      if (took && g > bestG) { best = core; bestG = g; }
    } catch (e) {
      console.log(`probe OPENBLAS_CORETYPE=${core} failed: ${(e as Error).message}`);
    }
  }
  if (saved === undefined) delete process.env.OPENBLAS_CORETYPE; else process.env.OPENBLAS_CORETYPE = saved;
  return best;
}

function summary(results: [string, GemmBenchResult][]): void {
  console.log('\n=== GEMM summary (best GFLOP/s; ratios against C OpenBLAS under the same core setting)');
  console.log('| core | size | C OpenBLAS | addon+OpenBLAS | ratio | builtin | builtin ratio |');
  console.log('|------|-----:|-----------:|---------------:|------:|--------:|--------------:|');
  for (const [name, r] of results)
    for (const row of r.rows) {
      const ratio = (x: number | null): string => (row.c && x !== null ? (x / row.c).toFixed(2) : 'n/a');
      console.log(`| ${name} | ${row.size} | ${row.c?.toFixed(1) ?? 'n/a'} | ${row.addonBlas?.toFixed(1) ?? 'n/a'} | ` +
        `${ratio(row.addonBlas)} | ${row.builtin.toFixed(1)} | ${ratio(row.builtin)} |`);
    }
}

async function runAttention(): Promise<void> {
  const url = new URL('./attention.js', import.meta.url);
  if (!existsSync(fileURLToPath(url))) {
    console.log('\n(attention bench skipped: bench/attention.ts is not there yet)');
    return;
  }
  const spec = url.href;   // not a literal, so tsc does not need the module to exist
  const mod = (await import(spec)) as { runAttentionBench?: () => Promise<void> };
  if (typeof mod.runAttentionBench !== 'function') {
    console.log('\n(attention bench skipped: bench/attention.js does not export runAttentionBench)');
    return;
  }
  console.log('\n=== attention');
  await mod.runAttentionBench();
}

async function main(): Promise<void> {
  if (process.argv.includes(CHILD_FLAG)) {
    const r = await runGemmBench({ sizes, threads, reps, rounds: 6 });
    printResult('', r);
    console.log(RESULT_TAG + JSON.stringify(r));
    return;
  }
  const results: [string, GemmBenchResult][] = [];
  const fixed = process.env.OPENBLAS_CORETYPE;
  let best: string | null = fixed ?? null;
  if (fixed) {
    const r = await gemmChild(fixed);
    if (r) results.push([`${fixed} (from env)`, r]);
  } else {
    const def = await gemmChild(null);
    if (def) {
      const core = (def.cConfig ?? def.addonBlas ?? '').match(/(\w+) MAX_THREADS/)?.[1] ?? '?';
      results.push([`default (${core})`, def]);
    }
    best = pickBestCore();
    if (best) {
      const r = await gemmChild(best);
      if (r) results.push([`${best} (forced)`, r]);
    }
  }
  summary(results);
  // The attention bench runs here; OpenBLAS is not loaded in this process yet, so the best core applies.
  if (best) process.env.OPENBLAS_CORETYPE = best;
  native.set_num_threads(threads);
  console.log(`\nthreads ${native.num_threads()}, gemm backend: ${native.build_info().blas}`);
  await runAttention();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
