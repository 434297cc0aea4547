// Progress reporting for long loops (training, encoding, sampling). On a terminal: one bar redrawn
// in place with \r (count, rate, ETA and the latest info values), at most ~10 times a second. In a
// pipe or file: a plain line at every 5% of the total or every 10 s, whichever comes first. With
// json: nothing (the command prints a machine-readable summary instead). Writes to stderr by default.

export interface ProgressOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  json?: boolean;
  /** clock in milliseconds (tests) */
  now?: () => number;
}

type Info = Record<string, number | string>;

/** 1234.5 s -> "20:35", 5000 s -> "1:23:20". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, '0'), ss = String(r).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function formatValue(v: number | string): string {
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(3) : v.toPrecision(4);
}

export function formatInfo(info: Info | undefined): string {
  return info ? Object.entries(info).map(([k, v]) => `${k}=${formatValue(v)}`).join(' ') : '';
}

export class Progress {
  private count = 0;
  private info: Info | undefined;
  private readonly t0: number;
  private lastDraw = -Infinity;
  private lastLine: number;
  private nextPct = 5;
  private finished = false;
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly now: () => number;
  private readonly mode: 'tty' | 'lines' | 'silent';

  constructor(readonly total: number, readonly label: string, opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.now = opts.now ?? (() => performance.now());
    this.mode = opts.json ? 'silent' : this.stream.isTTY ? 'tty' : 'lines';
    this.t0 = this.now();
    this.lastLine = this.t0;
  }

  /** Items done so far. */
  get value(): number { return this.count; }

  /** Records n more items done (default 1) and the latest values to show (e.g. {loss: 0.12}). */
  tick(n = 1, info?: Info): void {
    this.count += n;
    if (info) this.info = info;
    if (this.mode === 'silent' || this.finished) return;
    const t = this.now();
    if (this.mode === 'tty') {
      if (t - this.lastDraw >= 100 || this.count >= this.total) { this.lastDraw = t; this.stream.write(`\r${this.bar(t)}\x1b[K`); }
      return;
    }
    const pct = this.total > 0 ? (100 * this.count) / this.total : 0;
    if ((this.total > 0 && pct >= this.nextPct) || t - this.lastLine >= 10_000) {
      while (this.total > 0 && this.nextPct <= pct) this.nextPct += 5;
      this.lastLine = t;
      this.stream.write(this.line(t) + '\n');
    }
  }

  /** Ends the display: a final line with the elapsed time (and info, if given). */
  done(info?: Info): void {
    if (this.finished) return;
    this.finished = true;
    if (info) this.info = info;
    if (this.mode === 'silent') return;
    const t = this.now(), secs = (t - this.t0) / 1000;
    const msg = `${this.label}: ${this.count}${this.total > 0 ? `/${this.total}` : ''} in ${formatDuration(secs)} ` +
      `(${this.rate(t).toPrecision(3)}/s)${this.info ? ' ' + formatInfo(this.info) : ''}`;
    this.stream.write(this.mode === 'tty' ? `\r${msg}\x1b[K\n` : msg + '\n');
  }

  private rate(t: number): number {
    const secs = (t - this.t0) / 1000;
    return secs > 0 ? this.count / secs : 0;
  }

  private eta(t: number): string {
    const r = this.rate(t);
    return this.total > 0 && r > 0 ? formatDuration((this.total - this.count) / r) : '--:--';
  }

  private counts(): string {
    if (this.total <= 0) return `${this.count}`;
    return `${this.count}/${this.total} ${((100 * this.count) / this.total).toFixed(0).padStart(3)}%`;
  }

  /** The plain line: "label 150/1000  15% 12.3/s eta 1:09 loss=0.1234". */
  line(t = this.now()): string {
    const info = formatInfo(this.info);
    return `${this.label} ${this.counts()} ${this.rate(t).toPrecision(3)}/s eta ${this.eta(t)}${info ? ' ' + info : ''}`;
  }

  /** The terminal bar, fitted to the terminal width. */
  bar(t = this.now()): string {
    const cols = this.stream.columns && this.stream.columns > 20 ? this.stream.columns : 80;
    const info = formatInfo(this.info);
    const tail = ` ${this.counts()} ${this.rate(t).toPrecision(3)}/s eta ${this.eta(t)}${info ? ' ' + info : ''}`;
    const room = cols - 1 - this.label.length - tail.length - 3;
    if (this.total <= 0 || room < 10) return `${this.label}${tail}`.slice(0, cols - 1);
    const width = Math.min(room, 40), fill = Math.min(width, Math.round((width * this.count) / this.total));
    return `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}]${tail}`;
  }
}
