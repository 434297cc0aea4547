// Statistics files (lib/metrics/stats-io.ts): pytorch-fid `.npz` (mu, sigma float64, optional n) round trip,
// exact; float32 stats widened; ADM reference batches (arr_0 uint8 NHWC + optional mu/sigma/mu_s/sigma_s);
// errors naming the file, key and shape; and, when DD2_PYTHON is set, numpy reads what we write and we
// read what numpy writes (np.savez as pytorch-fid and the ADM evaluator use it).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeNpz } from '../../lib/io/npz.js';
import { readAdmReference, readFidStats, writeFidStats } from '../../lib/metrics/stats-io.js';
import type { FeatureStats } from '../../lib/metrics/fid.js';

function stats(d: number, n?: number): FeatureStats {
  const mu = new Float64Array(d).map((_, i) => Math.sin(i + 1) * 1e3 + 1 / 3);
  const sigma = new Float64Array(d * d).map((_, i) => Math.cos(i) / (1 + (i % 7)) * Math.PI);
  sigma[0] = 5e-324;   // a subnormal survives
  return n === undefined ? { mu, sigma } : { mu, sigma, n };
}

const bytes = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

t.test('pytorch-fid stats round trip', async (t) => {
  const dir = t.testdir();
  for (const compress of [false, true]) {
    const p = join(dir, `s-${compress}.npz`), s = stats(33, 50000);
    writeFidStats(p, s, { compress });
    const r = readFidStats(p);
    t.ok(bytes(r.mu).equals(bytes(s.mu)) && bytes(r.sigma).equals(bytes(s.sigma)), `mu and sigma bit-exact (${compress ? 'deflated' : 'stored'})`);
    t.equal(r.n, 50000, 'n kept');
  }
  const p = join(dir, 'no-n.npz');
  writeFidStats(p, stats(4));
  t.equal(readFidStats(p).n, undefined, 'n absent when not given');
  // float32 statistics (some tools save them) are widened.
  writeNpz(p, { mu: { dtype: 'float32', shape: [2], data: new Float32Array([0.5, 1.5]) },
    sigma: { dtype: 'float32', shape: [2, 2], data: new Float32Array([1, 0.25, 0.25, 2]) } });
  const w = readFidStats(p);
  t.ok(w.mu instanceof Float64Array && w.sigma instanceof Float64Array, 'float32 widened to Float64Array');
  t.same(Array.from(w.sigma), [1, 0.25, 0.25, 2], 'values kept');
});

t.test('ADM reference batch', async (t) => {
  const dir = t.testdir(), p = join(dir, 'ref.npz');
  const img = new Uint8Array(2 * 4 * 5 * 3).map((_, i) => (i * 37) % 256);
  const s = stats(6), ss = stats(3);
  writeNpz(p, {
    arr_0: { dtype: 'uint8', shape: [2, 4, 5, 3], data: img },
    mu: { dtype: 'float64', shape: [6], data: s.mu }, sigma: { dtype: 'float64', shape: [6, 6], data: s.sigma },
    mu_s: { dtype: 'float64', shape: [3], data: ss.mu }, sigma_s: { dtype: 'float64', shape: [3, 3], data: ss.sigma },
  });
  const r = readAdmReference(p);
  t.same([r.images.n, r.images.h, r.images.w, r.images.c], [2, 4, 5, 3], 'NHWC shape');
  t.ok(bytes(r.images.data).equals(bytes(img)), 'pixels exact');
  t.ok(r.stats && bytes(r.stats.sigma).equals(bytes(s.sigma)) && bytes(r.stats.mu).equals(bytes(s.mu)), 'pool_3 stats');
  t.ok(r.spatialStats && bytes(r.spatialStats.sigma).equals(bytes(ss.sigma)), 'spatial stats');
  const q = join(dir, 'images-only.npz');
  writeNpz(q, { arr_0: { dtype: 'uint8', shape: [2, 4, 5, 3], data: img } });
  const o = readAdmReference(q);
  t.equal(o.stats, undefined, 'no stats when absent');
  t.equal(o.spatialStats, undefined, 'no spatial stats when absent');
});

t.test('errors name the file, key and shape', async (t) => {
  const dir = t.testdir(), p = join(dir, 'bad.npz');
  writeNpz(p, { mu: { dtype: 'float64', shape: [3], data: new Float64Array(3) } });
  t.throws(() => readFidStats(p), new RegExp(`${p.replace(/[.]/g, '\\.')}: no 'sigma' array \\(keys: mu\\)`));
  writeNpz(p, { mu: { dtype: 'float64', shape: [3], data: new Float64Array(3) }, sigma: { dtype: 'float64', shape: [3, 2], data: new Float64Array(6) } });
  t.throws(() => readFidStats(p), /'sigma' has shape \[3, 2\], expected \[3, 3\] to match 'mu'/);
  writeNpz(p, { mu: { dtype: 'int32', shape: [1], data: new Int32Array(1) }, sigma: { dtype: 'float64', shape: [1, 1], data: new Float64Array(1) } });
  t.throws(() => readFidStats(p), /'mu' is int32, expected float64/);
  writeNpz(p, { mu: { dtype: 'float64', shape: [1, 1], data: new Float64Array(1) }, sigma: { dtype: 'float64', shape: [1, 1], data: new Float64Array(1) } });
  t.throws(() => readFidStats(p), /'mu' has shape \[1, 1\], expected \[D\]/);
  writeNpz(p, { images: { dtype: 'uint8', shape: [1], data: new Uint8Array(1) } });
  t.throws(() => readAdmReference(p), /no 'arr_0' array of images \(keys: images\)/);
  writeNpz(p, { arr_0: { dtype: 'float32', shape: [1, 1, 1, 3], data: new Float32Array(3) } });
  t.throws(() => readAdmReference(p), /'arr_0' is float32, expected uint8/);
  writeNpz(p, { arr_0: { dtype: 'uint8', shape: [1, 3, 2, 2], data: new Uint8Array(12) } });
  t.throws(() => readAdmReference(p), /'arr_0' has shape \[1, 3, 2, 2\], expected \[N, H, W, 3\]/);
  writeNpz(p, { arr_0: { dtype: 'uint8', shape: [1, 1, 1, 3], data: new Uint8Array(3) }, mu_s: { dtype: 'float64', shape: [2], data: new Float64Array(2) } });
  t.throws(() => readAdmReference(p), /no 'sigma_s' array/);
  t.throws(() => readFidStats(join(dir, 'missing.npz')), /cannot read .*missing\.npz/);
  t.throws(() => writeFidStats(p, { mu: new Float64Array(2), sigma: new Float64Array(3) }), /sigma has 3 elements, expected 2 x 2/);
});

const py = process.env.DD2_PYTHON;
const hasNumpy = !!py && spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
t.test('numpy interop', { skip: hasNumpy ? false : 'set DD2_PYTHON to a python with numpy' }, async (t) => {
  const dir = t.testdir();
  const script = join(dir, 'check.py');
  writeFileSync(script, [
    'import sys, numpy as np',
    'mode, path = sys.argv[1], sys.argv[2]',
    'd = 5',
    'mu = np.sin(np.arange(d) + 1.0) * 1e3 + 1 / 3',
    'sigma = np.cos(np.arange(d * d)).reshape(d, d) / 7.0 * np.pi',
    "if mode == 'write-fid':",
    '    np.savez(path, mu=mu, sigma=sigma)',
    "elif mode == 'write-adm':",
    '    img = (np.arange(2 * 3 * 4 * 3) * 37 % 256).astype(np.uint8).reshape(2, 3, 4, 3)',
    '    np.savez(path, img, mu=mu, sigma=sigma, mu_s=mu[:2], sigma_s=sigma[:2, :2])',
    'else:',
    '    f = np.load(path)',
    "    assert f['mu'].dtype == np.float64 and f['sigma'].dtype == np.float64, (f['mu'].dtype, f['sigma'].dtype)",
    "    assert np.array_equal(f['mu'], mu) and np.array_equal(f['sigma'], sigma)",
    "    assert int(f['n']) == 1234",
    "    print('ok')",
  ].join('\n'));
  const run = (...args: string[]): ReturnType<typeof spawnSync> => spawnSync(py!, [script, ...args], { encoding: 'utf8' });
  // What numpy writes, we read; compare with the same values computed here.
  const d = 5;
  const mu = Float64Array.from({ length: d }, (_, i) => Math.sin(i + 1) * 1e3 + 1 / 3);
  const fid = join(dir, 'np-fid.npz');
  const w = run('write-fid', fid);
  t.equal(w.status, 0, `numpy wrote stats: ${w.stderr}`);
  const r = readFidStats(fid);
  t.ok(Array.from(r.mu).every((v, i) => Math.abs(v - mu[i]) <= 1e-12 * Math.abs(mu[i])), 'mu read from numpy');
  t.equal(r.sigma.length, d * d, 'sigma d x d');
  // We write it back; numpy checks it bit for bit against its own computation.
  const ours = join(dir, 'ours.npz');
  writeFidStats(ours, { ...r, n: 1234 });
  const c = run('check', ours);
  t.equal(c.status, 0, `numpy reads dd2's stats exactly: ${c.stdout}${c.stderr}`);
  const adm = join(dir, 'np-adm.npz');
  t.equal(run('write-adm', adm).status, 0, 'numpy wrote an ADM-style batch');
  const a = readAdmReference(adm);
  t.same([a.images.n, a.images.h, a.images.w, a.images.c], [2, 3, 4, 3], 'arr_0 NHWC from np.savez positional array');
  t.equal(a.images.data[5], (5 * 37) % 256, 'pixel values');
  t.equal(a.spatialStats?.mu.length, 2, 'mu_s / sigma_s read');
});
