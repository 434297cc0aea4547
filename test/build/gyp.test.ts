// binding.gyp really builds a loadable CPU-only addon with node-gyp (slow: about a minute on 2
// cores, so it runs when DD2_TEST_GYP=1, as CI sets).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, symlinkSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/tensor/native.js';

t.test('node-gyp builds the CPU-only addon from binding.gyp', { skip: process.env.DD2_TEST_GYP ? false : 'set DD2_TEST_GYP=1' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dd2-gyp-'));
  try {
    for (const f of ['binding.gyp', 'package.json', 'native']) cpSync(join(packageRoot, f), join(dir, f), { recursive: true });
    symlinkSync(join(packageRoot, 'node_modules'), join(dir, 'node_modules'));
    // node-gyp comes with the dev dependencies (through tap); nodedir points at the system headers
    // (/usr/include/node from the nodejs package), so nothing is downloaded.
    const gyp = join(packageRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    const npmGyp = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${process.env.DD2_NODEDIR ?? '/usr'}`, '-j', '2'],
      { cwd: dir, encoding: 'utf8' });
    t.equal(npmGyp.status, 0, `node-gyp rebuild exits 0${npmGyp.status ? `:\n${npmGyp.stderr.slice(-2000)}` : ''}`);
    const addon = createRequire(import.meta.url)(join(dir, 'build', 'Release', 'dd2.node'));
    t.equal(addon.build_info().cuda.compiled, false, 'the gyp build is CPU-only');
    t.ok(addon.supports('gemm', 0) && addon.supports('softmax_forward', 0), 'and registers the CPU kernels');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
