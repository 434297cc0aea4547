#!/usr/bin/env node
// dd2 command-line entry point: runs the compiled CLI from dist/ (build it with `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/lib/cli/index.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('dd2: the TypeScript sources are not compiled (dist/ is missing).\n' +
    'Run `npm run build` (or `npx tsc -p .`) in the package folder.\n');
  process.exit(1);
}
try {
  const { main } = await import(cli.href);
  process.exitCode = await main(process.argv);
} catch (e) {
  process.stderr.write(`dd2: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
