// Atomic writes (lib/io/atomic.ts): content replaced whole, no temporary file left, chunked input,
// errors naming the path, hard-link replacement, and removal of temporary files of dead writers only.
// The SIGKILL behaviour is tested with a real child process in atomic-kill.test.ts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isTempName, linkAtomic, removeStaleTemps, writeFileAtomic } from '../../lib/io/atomic.js';

t.test('writeFileAtomic', async (t) => {
  const dir = t.testdir();
  const p = join(dir, 'f.bin');
  writeFileAtomic(p, 'first version, longer than the second');
  writeFileAtomic(p, [Buffer.from('sec'), new Uint8Array([0x6f, 0x6e, 0x64])]);
  t.equal(readFileSync(p, 'utf8'), 'second', 'replaced whole by the concatenated chunks');
  const big = new Uint8Array(20 << 20).map((_, i) => i & 255);   // more than one 8 MiB write
  writeFileAtomic(p, big);
  t.ok(readFileSync(p).equals(Buffer.from(big.buffer)), '20 MiB written in pieces');
  t.same(readdirSync(dir), ['f.bin'], 'no temporary file left');
  t.throws(() => writeFileAtomic(join(dir, 'no', 'such', 'dir', 'x.bin'), 'x'), /cannot write .*no\/such\/dir\/x\.bin: ENOENT/);
});

t.test('linkAtomic', async (t) => {
  const dir = t.testdir();
  const a = join(dir, 'a'), b = join(dir, 'b'), l = join(dir, 'latest');
  writeFileSync(a, 'A'); writeFileSync(b, 'B');
  linkAtomic(a, l, () => readFileSync(a));
  linkAtomic(b, l, () => readFileSync(b));
  t.equal(readFileSync(l, 'utf8'), 'B', 'link replaced');
  t.equal(statSync(l).ino, statSync(b).ino, 'a hard link, not a copy');
  t.same(readdirSync(dir).filter(isTempName), [], 'no temporary file left');
});

t.test('removeStaleTemps', async (t) => {
  const dir = t.testdir();
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  const stale = `.model.safetensors.tmp-${deadPid}-0badc0de`, live = `.model.safetensors.tmp-${process.pid}-12345678`;
  for (const f of [stale, live, 'model.safetensors', '.hidden.tmp-x']) writeFileSync(join(dir, f), 'x');
  t.ok(isTempName(stale) && !isTempName('model.safetensors') && !isTempName('.hidden.tmp-x'), 'temp name pattern');
  t.same(removeStaleTemps(dir), [stale], "only the dead writer's file is removed");
  t.same(readdirSync(dir).sort(), ['.hidden.tmp-x', live, 'model.safetensors'].sort(), 'the rest is untouched');
});
