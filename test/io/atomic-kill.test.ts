// Done-means (3), first half: a real SIGKILL in the middle of a checkpoint write leaves the previous
// checkpoint loadable. A child process (test/io/kill-writer.ts) saves training states of 4M parameters
// in a loop (64 MB per set); after three complete saves the parent polls the run folder and SIGKILLs
// the child while a temporary file of the model, EMA or optimizer write exists (before its rename), or
// at a random moment. The folder must then hold a complete, consistent set (every value equal to its
// step, the last or next save the child reported) and RunDir.open must remove the debris.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isTempName } from '../../lib/io/atomic.js';
import { loadModelFile, RunDir } from '../../lib/io/checkpoint.js';

const here = dirname(fileURLToPath(import.meta.url));
const N = 4 << 20;
const loader = process.execArgv.find((a) => a.includes('@tapjs/typescript')) ??
  `--import=${pathToFileURL(join(here, '../../node_modules/@tapjs/typescript/dist/esm/import.mjs')).href}`;

interface Trial { saved: number; killedAt: string; temps: string[]; tempBytes: number; stderr: string }

/** Runs the writer in `dir` and kills it when a temp file matching `target` appears (or `delay` ms
 *  after its third complete save). */
function trial(dir: string, target: RegExp | null, delay = 0): Promise<Trial> {
  const env: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [loader, join(here, 'kill-writer.ts'), dir, String(N)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let saved = 0, out = '', stderr = '', killedAt = '', tempBytes = 0, timer: NodeJS.Timeout | undefined;
  child.stdout.on('data', (d) => {
    out += d;
    const m = [...out.matchAll(/saved (\d+)\n/g)];
    if (m.length) saved = Number(m[m.length - 1][1]);
    if (!target && saved >= 3 && !timer) timer = setTimeout(() => { killedAt = `random moment (${delay} ms)`; child.kill('SIGKILL'); }, delay);
  });
  child.stderr.on('data', (d) => { stderr += d; });
  const poll = setInterval(() => {
    if (!target || saved < 3 || killedAt) return;
    const hit = readdirSync(dir).find((f) => isTempName(f) && target.test(f));
    if (hit) {
      child.kill('SIGKILL');
      killedAt = hit;
      try { tempBytes = statSync(join(dir, hit)).size; } catch { /* renamed meanwhile */ }
    }
  }, 1);
  const guard = setTimeout(() => { killedAt = 'guard timeout'; child.kill('SIGKILL'); }, 25_000);
  return new Promise((res) => {
    child.on('exit', () => {
      clearInterval(poll); clearTimeout(guard); if (timer) clearTimeout(timer);
      res({ saved, killedAt, temps: readdirSync(dir).filter(isTempName), tempBytes, stderr });
    });
  });
}

function allEqual(a: Float32Array, v: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== v) return false;
  return true;
}

const cases: [string, RegExp | null, number][] = [
  ['model file', /^\.ck-model-\d+\.safetensors\.tmp/, 0],
  ['EMA file', /^\.ck-ema-\d+\.safetensors\.tmp/, 0],
  ['optimizer file', /^\.ck-optim-\d+\.safetensors\.tmp/, 0],
  ['random moment', null, Math.floor(Math.random() * 300)],
];

t.test('SIGKILL during checkpoint writes leaves the previous set loadable', async (t) => {
  const root = t.testdir();
  for (const [what, target, delay] of cases) {
    const dir = join(root, what.replace(/ /g, '-'));
    RunDir.create(dir, { what });
    const r = await trial(dir, target, delay);
    t.comment(`${what}: child reported ${r.saved} complete saves; killed during ${r.killedAt}` +
      (r.tempBytes ? ` (temporary file had ${r.tempBytes} bytes)` : '') + `; left ${r.temps.length} temporary file(s)`);
    t.ok(r.saved >= 3, `${what}: the child completed three saves before the kill (so an older set was pruned)${r.stderr ? `: ${r.stderr}` : ''}`);
    t.not(r.killedAt, 'guard timeout', `${what}: killed by the test, not the guard`);
    if (target) t.ok(r.temps.length >= 1, `${what}: killed mid-write (a temporary file was left behind)`);
    const rd = RunDir.open(dir);
    t.same(readdirSync(dir).filter(isTempName), [], `${what}: RunDir.open removed the temporary files`);
    const st = rd.loadTrainingState('ck');
    t.ok(st, `${what}: a training state loads`);
    if (!st) continue;
    const s = st.step;
    t.ok(s === r.saved || s === r.saved + 1, `${what}: step ${s} is the last reported save ${r.saved} (or the next, if killed after its pointer)`);
    t.equal(st.meta.step, s, `${what}: model meta step`);
    t.ok(allEqual(st.model.get('w')!, s) && allEqual(st.model.get('b')!, s), `${what}: model values all equal ${s}`);
    t.ok(allEqual(st.ema!.shadow.get('w')!, s), `${what}: EMA values all equal ${s}`);
    const p = st.optimizer!.params;
    t.ok(st.optimizer!.step === s && p.every((e) => e && e.step === s && allEqual(e.m, s) && allEqual(e.v, s)),
      `${what}: optimizer moments and steps all equal ${s}`);
    t.same([st.rng, st.batcher], [{ seed: '9', offset: 4 * s }, { pos: s }], `${what}: counters of step ${s}`);
    const newest = loadModelFile(rd.modelPath('ck'));
    t.ok(newest.meta.step === s || newest.meta.step === s - 1, `${what}: ck.safetensors loads (step ${newest.meta.step})`);
  }
});
