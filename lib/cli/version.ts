// `dd2 --version`: the package version and the facts of this build (CUDA, GPUs, BLAS, threads).
import { readFileSync } from 'node:fs';
import { addonPath, joinRoot, native } from '../tensor/native.js';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(joinRoot('package.json'), 'utf8')) as { version: string }).version;
}

export function versionReport(): string {
  const b = native.build_info();
  const c = b.cuda;
  const cuda = !c.compiled
    ? 'not compiled (built without nvcc)'
    : c.devices > 0
      ? `compiled (${c.archs}, ${c.compiler}), ${c.devices} GPU(s): ${c.name}, compute ${c.computeCapability}, ` +
        `${((c.totalMemory ?? 0) / 2 ** 30).toFixed(1)} GiB; runtime ${c.runtimeVersion}, driver ${c.driverVersion}`
      : `compiled (${c.archs}, ${c.compiler}); unavailable (${c.error})`;
  return [
    `dd2 ${packageVersion()}`,
    `  addon:    ${addonPath} (Node-API ${b.napiVersion}, ${b.compiler})`,
    `  cuda:     ${cuda}`,
    `  blas:     ${b.blas}`,
    `  cpu:      ${b.cpuFeatures}, ${b.threads} threads`,
    `  node:     ${process.version}`,
  ].join('\n');
}
