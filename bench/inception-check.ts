// Checks lib/metrics/inception.ts against PyTorch: reads the folder written by bench/torch/inception_ref.py
// (weights.safetensors with pytorch-fid key names; reference.safetensors with images (4, 3, H, W) in [0, 1],
// pool (4, 2048), logits (4, 1008) and pool_tf1), runs the network on --device, prints max abs and max
// relative error (relative to max |ref|) per output and exits 1 when any exceeds --tol (default 1e-4).
//   python3 bench/torch/inception_ref.py --out /tmp/incv3 && node dist/bench/inception-check.js --ref /tmp/incv3 --device cuda
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readSafetensors, toFloat32, type NamedArray } from '../lib/io/safetensors.js';
import { loadInception, type InceptionPreset } from '../lib/metrics/inception.js';
import { tensor } from '../lib/tensor/create.js';
import { parseDevice } from '../lib/tensor/dtype.js';
import { tidy } from '../lib/tensor/engine.js';
import { native } from '../lib/tensor/native.js';

function fail(msg: string): never {
  console.error(`inception-check: ${msg}`);
  process.exit(2);
}

const { values } = parseArgs({
  options: { ref: { type: 'string' }, device: { type: 'string', default: 'cpu' }, tol: { type: 'string', default: '1e-4' } },
});
if (!values.ref) fail('--ref <folder written by bench/torch/inception_ref.py> is required');
const device = parseDevice(values.device!);
const tol = Number(values.tol);
if (!(tol > 0)) fail(`--tol must be a positive number, got '${values.tol}'`);
const weightsPath = join(values.ref, 'weights.safetensors'), refPath = join(values.ref, 'reference.safetensors');
for (const p of [weightsPath, refPath]) if (!existsSync(p)) fail(`${p} does not exist (run bench/torch/inception_ref.py --out ${values.ref})`);

const ref = readSafetensors(refPath).arrays;
const get = (k: string): NamedArray => ref.get(k) ?? fail(`${refPath} has no tensor '${k}'`);
const images = get('images');

const t0 = performance.now();
const net = loadInception(weightsPath, { device });
const tLoad = performance.now() - t0;

function compare(name: string, got: Float32Array, want: Float32Array): boolean {
  if (got.length !== want.length) fail(`${name}: ${got.length} values, reference has ${want.length}`);
  let maxAbs = 0, maxRef = 0;
  for (let i = 0; i < got.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  const rel = maxAbs / Math.max(maxRef, 1e-30);
  const ok = rel <= tol && Number.isFinite(rel);
  console.log(`${name.padEnd(10)} max abs err ${maxAbs.toExponential(3)}  max |ref| ${maxRef.toExponential(3)}  ` +
    `rel ${rel.toExponential(3)}  ${ok ? 'ok' : `FAIL (> ${tol})`}`);
  return ok;
}

let ok = true;
const timings: string[] = [];
tidy(() => {
  const x = tensor(toFloat32(images), images.shape, { device });
  for (const preset of ['pytorch-fid', 'torch-fidelity'] as InceptionPreset[]) {
    const t = performance.now();
    const out = net.forward(x, { preset });
    const pool = out.pool.toFloat32Array();
    timings.push(`${preset} ${(performance.now() - t).toFixed(0)} ms`);
    if (preset === 'pytorch-fid') {
      ok = compare('pool', pool, toFloat32(get('pool'))) && ok;
      ok = compare('logits', out.logits!.toFloat32Array(), toFloat32(get('logits'))) && ok;
    } else {
      ok = compare('pool_tf1', pool, toFloat32(get('pool_tf1'))) && ok;
    }
  }
});
net.dispose();
const info = native.build_info();
console.log(`device ${device}${device === 'cuda' ? ` (${info.cuda.name ?? 'unknown'})` : ''}; images ` +
  `[${images.shape.join(', ')}]; load ${tLoad.toFixed(0)} ms; forward ${timings.join(', ')} (first call includes warm-up)`);
console.log(ok ? 'inception-check: PASS' : 'inception-check: FAIL');
process.exit(ok ? 0 : 1);
