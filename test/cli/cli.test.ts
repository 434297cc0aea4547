// The dd2 binary: --version reports build facts, --help lists the commands, a command that is not
// implemented yet fails with a message, an unknown command is a usage error (exit 2).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { joinRoot } from '../../lib/tensor/native.js';

const bin = joinRoot('bin', 'dd2.js');
const built = existsSync(joinRoot('dist', 'lib', 'cli', 'index.js'));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

t.test('dd2 CLI', { skip: built ? false : 'dist/ not built (run npm run build)' }, async (t) => {
  const v = run('--version');
  t.equal(v.status, 0, '--version exits 0');
  t.match(v.stdout, /^dd2 \d+\.\d+\.\d+/, 'prints the version');
  t.match(v.stdout, /cuda: +(not compiled|compiled)/, 'says whether CUDA is compiled');
  t.match(v.stdout, /blas: +(openblas|builtin)/, 'names the BLAS in use');

  const h = run('--help');
  t.equal(h.status, 0, '--help exits 0');
  for (const c of ['train', 'distill', 'sample', 'eval', 'pipeline']) t.match(h.stdout, new RegExp(`\\n  ${c} +\\S`), `--help lists ${c}`);

  const p = run('distill', '--teacher', 'no-such-teacher.safetensors');
  t.not(p.status, 0, 'distill with a missing teacher fails');
  t.match(p.stderr, /no-such-teacher\.safetensors/, 'and names the file');

  const u = run('frobnicate');
  t.equal(u.status, 2, 'an unknown command is a usage error');
  t.match(u.stderr, /unknown command 'frobnicate'/);
});
