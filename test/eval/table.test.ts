// The evaluation table (lib/eval/table.ts) and the speed measurement (lib/eval/speed.ts): every column is in
// every JSON row (null when not measured), speed-up is the first row's latency over each row's, the text
// table is aligned; the speed timer runs warm-up + repeats rounds, takes medians, and separates
// generate() from decode() (checked on a toy sampler that busy-waits known times in each).
import t from 'tap';
import { tensor } from '../../lib/tensor/create.js';
import { memory } from '../../lib/tensor/engine.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import type { ImageSampler } from '../../lib/eval/sampler.js';
import type { EvalMetrics } from '../../lib/eval/metrics.js';
import { measureSpeed, median } from '../../lib/eval/speed.js';
import { COLUMNS, formatTable, tableJson, tableRows, type EvalRow } from '../../lib/eval/table.js';

const base = memory();

const spin = (ms: number): void => { const end = performance.now() + ms; while (performance.now() < end) { /* busy */ } };

function slowSampler(genMs: number, decMs: number): ImageSampler & { gens: number[]; decs: number } {
  return {
    name: 'slow', steps: 7, numClasses: 10, channels: 1, size: 2, gens: [], decs: 0,
    generate(labels: Int32Array): Tensor { this.gens.push(labels.length); spin(genMs); return tensor(new Float32Array(labels.length), [labels.length]); },
    decode(lat: Tensor): Tensor { this.decs++; spin(decMs); return tensor(new Float32Array(lat.shape[0] * 4), [lat.shape[0], 1, 2, 2]); },
    dispose(): void {},
  };
}

const metrics = (fid: number, withPr: boolean): EvalMetrics => ({
  n: 100, net: 'domain:mnist@0123456789ab', ref: 'mnist:test (shipped, n=10000)',
  fid: { value: fid, n: 100, net: 'domain:mnist@0123456789ab', ref: 'mnist:test', nRef: 10000 },
  is: { value: 9.1, std: 0.2, splits: 10, n: 100, net: 'domain:mnist@0123456789ab' },
  precision: withPr ? { value: 0.8, n: 100, net: 'x', ref: 'r', nRef: 100, k: 3 } : null,
  recall: withPr ? { value: 0.6, n: 100, net: 'x', ref: 'r', nRef: 100, k: 3 } : null,
  classAccuracy: withPr ? { value: 0.97, n: 100, net: 'x' } : null,
});

t.test('median', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.throws(() => median([]));
});

t.test('measureSpeed: warm-up, repeats, medians, generate and decode apart', async (t) => {
  const s = slowSampler(8, 3);
  const r = measureSpeed(s, { batch: 5, warmup: 2, repeats: 3 });
  t.same(s.gens, [1, 1, 1, 1, 1, 5, 5, 5, 5, 5], 'batch 1 then batch 5, each 2 warm-up + 3 timed rounds');
  t.equal(s.decs, 10, 'decode called once per round');
  t.equal(r.steps, 7, 'steps from the sampler');
  const lat = r.latency!;
  t.ok(lat.generateMs >= 8 && lat.generateMs < 8 * 4, `generate ${lat.generateMs.toFixed(2)} ms for 8 ms of work`);
  t.ok(lat.decodeMs >= 3 && lat.decodeMs < 3 * 4, `decode ${lat.decodeMs.toFixed(2)} ms for 3 ms of work`);
  t.equal(lat.totalMs, lat.generateMs + lat.decodeMs);
  t.ok(Math.abs(r.throughput.imagesPerSecond - 5 / (r.throughput.totalMs / 1000)) < 1e-9, 'img/s = batch / total seconds');
  const only = measureSpeed(slowSampler(1, 1), { batch: 3, warmup: 0, repeats: 1, skipLatency: true });
  t.equal(only.latency, null, 'latency can be skipped');
  t.throws(() => measureSpeed(s, { batch: 0 }), /batch/);
});

t.test('table rows and JSON carry every column', async (t) => {
  const teacher = measureSpeed(slowSampler(20, 1), { batch: 4, warmup: 0, repeats: 3 });
  const student = measureSpeed(slowSampler(1, 1), { batch: 4, warmup: 0, repeats: 3 });
  const rows: EvalRow[] = [
    { name: 'teacher', source: '/m/gpt.safetensors', steps: 49, metrics: metrics(3.2, true), ppl: null, speed: teacher },
    { name: 'dd2-1step', source: '/m/gen.safetensors', steps: 1, metrics: metrics(5.5, true),
      ppl: { value: 1234.5, n: 100, kept: 98, lo: 1, hi: 2, distance: 'dPPL (domain net)', epsilon: 1e-4 }, speed: student },
    { name: 'run/samples.npz', source: '/s/samples.npz', steps: null, metrics: metrics(7.25, false), ppl: null, speed: null },
  ];
  const flat = tableRows(rows);
  const json = tableJson(rows, { dataset: 'mnist' }) as { columns: string[]; rows: Record<string, unknown>[]; dataset: string; details: unknown[] };
  t.equal(json.dataset, 'mnist', 'extra fields kept');
  for (const r of json.rows) for (const c of json.columns) t.ok(c in r, `row ${r.name} has column ${c}`);
  t.same(json.columns.slice(2), COLUMNS.map(([k]) => k));
  t.equal(json.details.length, 3);
  t.equal(flat[0].speedup, 1, 'the first row is the speed reference');
  t.ok(Math.abs(flat[1].speedup! - teacher.latency!.totalMs / student.latency!.totalMs) < 1e-12, 'speed-up = latency ratio');
  t.ok(flat[1].speedup! > 1.5, `a 21 ms vs 2 ms sampler is faster: ${flat[1].speedup!.toFixed(2)}x`);
  t.same([flat[2].latencyMs, flat[2].throughput, flat[2].speedup, flat[2].precision, flat[2].ppl], [null, null, null, null, null],
    'a samples file has no speed; missing metrics are null');
  t.same([flat[1].fid, flat[1].is, flat[1].precision, flat[1].recall, flat[1].classAccuracy, flat[1].ppl], [5.5, 9.1, 0.8, 0.6, 0.97, 1234.5]);
  const text = formatTable(rows);
  const lines = text.split('\n');
  t.match(lines[0], /FID +IS +prec +recall +class acc +PPL +latency ms \(gen\+dec\) +img\/s +speed-up/, 'header names every column');
  t.match(lines[3], /^dd2-1step +1 +5\.50 +9\.10±0\.20 +0\.800 +0\.600 +0\.970 +1235 /, 'the student row');
  t.match(lines[4], /^run\/samples\.npz +- +7\.25 .* - +- +-$/, 'a samples file shows - for what it lacks');
  const ends = lines.slice(2, 5).map((l) => l.length);
  t.ok(ends[0] === ends[1], 'rows with all columns end at the same column');
  t.match(text, /metrics: n=100, network domain:mnist@0123456789ab, reference mnist:test/, 'legend names n, network and reference');
  t.match(text, /PPL: dPPL \(domain net\), 100 pairs/, 'legend says what PPL is');
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, base.tensors, 'live tensors back to the start');
});
