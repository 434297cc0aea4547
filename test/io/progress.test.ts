// Progress: on a TTY a \r-redrawn bar throttled to 10 updates a second with rate and ETA; in a pipe a
// plain line at every 5% (20 lines for 100 ticks) or every 10 s when the total is unknown; nothing with
// json; a final line from done(). Uses a fake stream and a fake clock.
import t from 'tap';
import { formatDuration, Progress } from '../../lib/io/progress.js';

function fake(isTTY: boolean) {
  const out: string[] = [];
  return { out, stream: { isTTY, columns: 100, write: (s: string) => { out.push(s); return true; } } as unknown as NodeJS.WriteStream };
}

t.test('pipe: a line every 5%', async (t) => {
  const { out, stream } = fake(false);
  let now = 0;
  const p = new Progress(100, 'train', { stream, now: () => now });
  for (let i = 0; i < 100; i++) { now += 50; p.tick(1, { loss: 1 / (i + 1), lr: 3e-4 }); }
  t.equal(out.length, 20, '20 lines for 100 steps');
  t.ok(out.every((l) => l.endsWith('\n') && !l.includes('\r')), 'plain lines');
  t.equal(out[0], 'train 5/100   5% 20.0/s eta 0:05 loss=0.2000 lr=3.000e-4\n', 'count, percent, rate, ETA, info');
  p.done({ loss: 0.01 });
  t.equal(out[20], 'train: 100/100 in 0:05 (20.0/s) loss=0.01000\n', 'final line');
  p.done();
  t.equal(out.length, 21, 'done() twice prints once');
});

t.test('pipe: every 10 s without a known total', async (t) => {
  const { out, stream } = fake(false);
  let now = 0;
  const p = new Progress(0, 'encode', { stream, now: () => now });
  for (let i = 0; i < 60; i++) { now += 1000; p.tick(2); }
  t.equal(out.length, 6, 'one line per 10 s over 60 s');
  t.equal(out[0], 'encode 20 2.00/s eta --:--\n');
});

t.test('tty: throttled bar redrawn in place', async (t) => {
  const { out, stream } = fake(true);
  let now = 0;
  const p = new Progress(1000, 'sample', { stream, now: () => now });
  for (let i = 0; i < 1000; i++) { now += 1; p.tick(); }
  t.ok(out.length >= 10 && out.length <= 12, `about one redraw per 100 ms (${out.length})`);
  t.ok(out.every((l) => l.startsWith('\r') && !l.includes('\n')), 'redraws start with \\r');
  t.match(out[out.length - 1], /^\rsample \[#{40}\] 1000\/1000 100% 1\.00e\+3\/s eta 0:00/, 'full bar at the end');
  t.match(out[1], /^\rsample \[#{4}\.{36}\] 101\/1000  10%/, 'partial bar');
  p.done();
  t.match(out[out.length - 1], /^\rsample: 1000\/1000 in 0:01 .*\n$/, 'final line ends with a newline');
});

t.test('json: silent', async (t) => {
  const { out, stream } = fake(true);
  const p = new Progress(10, 'x', { stream, json: true });
  for (let i = 0; i < 10; i++) p.tick();
  p.done();
  t.same(out, [], 'nothing written');
  t.equal(p.value, 10, 'still counts');
});

t.test('formatDuration', async (t) => {
  t.same([0, 59.4, 61, 3599, 3600, 5000, NaN].map(formatDuration), ['0:00', '0:59', '1:01', '59:59', '1:00:00', '1:23:20', '--:--']);
});
