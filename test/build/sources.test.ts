// binding.gyp (node-gyp, CPU only) must build the same C++ sources that CMakeLists.txt globs.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/tensor/native.js';

t.test('binding.gyp lists exactly the CPU sources CMake compiles', async (t) => {
  const gyp = JSON.parse(readFileSync(join(packageRoot, 'binding.gyp'), 'utf8'));
  const listed = new Set<string>(gyp.targets[0].sources);
  const cmake = readFileSync(join(packageRoot, 'CMakeLists.txt'), 'utf8');
  const dirs = [...cmake.matchAll(/\$\{CMAKE_CURRENT_SOURCE_DIR\}\/(native\/[a-z]+)\/\*\.cpp/g)].map((m) => m[1]);
  t.same(dirs.sort(), ['native/binding', 'native/common', 'native/cpu'], 'CMake globs the three CPU folders');
  const onDisk = new Set<string>();
  for (const d of dirs) for (const f of readdirSync(join(packageRoot, d))) if (f.endsWith('.cpp')) onDisk.add(`${d}/${f}`);
  t.same([...listed].filter((f) => !onDisk.has(f)).sort(), [], 'every binding.gyp source exists and is built by CMake');
  t.same([...onDisk].filter((f) => !listed.has(f)).sort(), [], 'every CMake source is listed in binding.gyp');
});
