// The evaluation table: one row per sampler (or samples file), the columns below, as aligned text for people
// and as a JSON object for scripts (the same numbers; a column that was not measured is null / '-').
import type { EvalMetrics } from './metrics.js';
import type { PplResult } from './ppl.js';
import type { SpeedResult } from './speed.js';

export interface EvalRow {
  /** sampler name or samples file name */
  name: string;
  /** the checkpoint or .npz it came from */
  source: string;
  /** model inferences per image (null for a samples file) */
  steps: number | null;
  metrics: EvalMetrics | null;
  ppl: (PplResult & { distance: string; epsilon: number }) | null;
  speed: SpeedResult | null;
}

/** Column keys of the JSON rows, in table order, with their text headers. */
export const COLUMNS = [
  ['steps', 'steps'],
  ['fid', 'FID'],
  ['is', 'IS'],
  ['precision', 'prec'],
  ['recall', 'recall'],
  ['classAccuracy', 'class acc'],
  ['ppl', 'PPL'],
  ['latencyMs', 'latency ms (gen+dec)'],
  ['throughput', 'img/s'],
  ['speedup', 'speed-up'],
] as const;

export type ColumnKey = typeof COLUMNS[number][0];
export type TableRow = { name: string; source: string } & Record<ColumnKey, number | null> & {
  generateMs: number | null; decodeMs: number | null; isStd: number | null;
};

/** Flat rows; speed-up is the first row's latency divided by each row's (DD2's "Time" ratio), or the ratio
 *  of throughputs when latency was not measured. */
export function tableRows(rows: readonly EvalRow[]): TableRow[] {
  const first = rows[0]?.speed;
  return rows.map((r) => {
    const m = r.metrics, s = r.speed;
    const lat = s?.latency ?? null;
    let speedup: number | null = null;
    if (first && s) {
      speedup = first.latency && lat ? first.latency.totalMs / lat.totalMs : s.throughput.imagesPerSecond / first.throughput.imagesPerSecond;
    }
    return {
      name: r.name, source: r.source, steps: r.steps,
      fid: m?.fid.value ?? null, is: m?.is?.value ?? null, isStd: m?.is?.std ?? null,
      precision: m?.precision?.value ?? null, recall: m?.recall?.value ?? null,
      classAccuracy: m?.classAccuracy?.value ?? null, ppl: r.ppl?.value ?? null,
      latencyMs: lat?.totalMs ?? null, generateMs: lat?.generateMs ?? null, decodeMs: lat?.decodeMs ?? null,
      throughput: s?.throughput.imagesPerSecond ?? null, speedup,
    };
  });
}

const fmt = (key: ColumnKey, v: number | null, row: TableRow): string => {
  if (v === null || v === undefined) return '-';
  switch (key) {
    case 'steps': return String(v);
    case 'fid': return v.toFixed(2);
    case 'is': return row.isStd !== null ? `${v.toFixed(2)}±${row.isStd.toFixed(2)}` : v.toFixed(2);
    case 'precision': case 'recall': case 'classAccuracy': return v.toFixed(3);
    case 'ppl': return v >= 100 ? v.toFixed(0) : v.toFixed(2);
    case 'latencyMs': return `${v.toFixed(1)} (${row.generateMs!.toFixed(1)}+${row.decodeMs!.toFixed(1)})`;
    case 'throughput': return v >= 100 ? v.toFixed(0) : v.toFixed(1);
    case 'speedup': return `${v.toFixed(1)}x`;
  }
};

/** The aligned text table (rows = samplers / files), followed by a legend line naming n, network and reference. */
export function formatTable(rows: readonly EvalRow[]): string {
  const flat = tableRows(rows);
  const header = ['', ...COLUMNS.map(([, h]) => h)];
  const cells = flat.map((r) => [r.name, ...COLUMNS.map(([k]) => fmt(k, r[k], r))]);
  const widths = header.map((h, j) => Math.max(h.length, ...cells.map((c) => c[j].length)));
  const line = (c: string[]): string => c.map((v, j) => (j === 0 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join('  ').trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  const notes = new Set<string>();
  for (const r of rows) {
    if (r.metrics) notes.add(`metrics: n=${r.metrics.n}, network ${r.metrics.net}, reference ${r.metrics.ref}`);
    if (r.ppl) notes.add(`PPL: ${r.ppl.distance}, ${r.ppl.n} pairs (${r.ppl.kept} kept by the 1/99 percentile filter), eps ${r.ppl.epsilon}`);
    if (r.speed) {
      notes.add(`speed: median of ${r.speed.repeats} runs after ${r.speed.warmup} warm-up; latency at batch 1, ` +
        `throughput at batch ${r.speed.throughput.batch}; speed-up vs ${flat[0].name}`);
    }
  }
  return [...out, ...[...notes].map((n) => `  ${n}`)].join('\n');
}

/** The JSON object of `dd2 eval --json` / eval.json: flat rows with every column, plus the full details. */
export function tableJson(rows: readonly EvalRow[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...extra,
    columns: ['name', 'source', ...COLUMNS.map(([k]) => k)],
    rows: tableRows(rows),
    details: rows.map((r) => ({ name: r.name, source: r.source, metrics: r.metrics, ppl: r.ppl, speed: r.speed })),
  };
}
