// DD2_DEBUG_MEMORY=1: a tensor dropped without dispose() is reported with its creation site when the
// garbage collector finds it, and its native storage is released. Runs the compiled library (dist/)
// in a child process with --expose-gc.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { joinRoot } from '../../lib/tensor/native.js';

const dist = (...p: string[]): string => pathToFileURL(joinRoot('dist', 'lib', ...p)).href;
const built = existsSync(joinRoot('dist', 'lib', 'tensor', 'create.js'));

t.test('a leaked tensor is reported with the stack that created it', { skip: built ? false : 'dist/ not built' }, async (t) => {
  const script = `
    const { tensor } = await import(${JSON.stringify(dist('tensor', 'create.js'))});
    const { memory } = await import(${JSON.stringify(dist('tensor', 'engine.js'))});
    function makeLeak() { tensor(new Float32Array(1000), [1000]); }
    makeLeak();
    for (let i = 0; i < 20 && memory().cpu.live > 0; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
    console.log(JSON.stringify({ live: memory().cpu.live, tensors: memory().tensors }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script],
    { env: { ...process.env, DD2_DEBUG_MEMORY: '1', DD2_DEFAULT_DEVICE: 'cpu' }, encoding: 'utf8' });
  t.match(r.stderr, /leaked tensor float32\[1000\] on cpu was garbage-collected without dispose\(\); created at/, 'reported');
  t.match(r.stderr, /makeLeak/, 'with the creating function in the stack');
  t.match(r.stdout, /\{"live":0,"tensors":0\}/, 'its native storage released and the tensor count back to 0');
});
