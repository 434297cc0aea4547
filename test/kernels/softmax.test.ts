// softmax / logSoftmax / crossEntropy: forward against float64 references, backward against finite
// differences (checkOp) and, where finite differences cannot be taken (-inf entries) or are dominated by
// truncation (|logits| ~ 1e4), against the analytic float64 gradient. Sizes 1, 7, 33, 1000; extremes.
import t from 'tap';
import type { Test } from 'tap';
import { softmax, logSoftmax, crossEntropy } from '../../lib/tensor/ops/softmax.js';
import { tensor } from '../../lib/tensor/create.js';
import { tidy, memory } from '../../lib/tensor/engine.js';
import { backward } from '../../lib/autograd/tape.js';
import { checkOp } from '../harness/gradcheck.js';
import { expectClose, Rng, type Tolerance } from '../harness/compare.js';
import {
  alongAxisRef, crossEntropyRef, logSoftmaxBackwardRef, logSoftmaxRef, softmaxBackwardRef, softmaxRef,
} from '../ref/softmax.js';

const rng = new Rng(21);
const before = memory();
const size = (s: number[]): number => s.reduce((p, v) => p * v, 1);
const lastRows = (s: number[]): [number, number] => [size(s.slice(0, -1)), s[s.length - 1]];

// TOLERANCES (measured maxima in the test log, then a margin of a few times):
// softmax forward: exp(x - m) with x - m rounded to float (relative error 6e-8 of |x - m| ~ 10, so up
//   to ~6e-7 in the tiniest probabilities), times a float reciprocal of a double sum: measured maxRel
//   5.7e-7 (worst/tol 0.28); rtol 1e-6. log_softmax forward: one rounding of a double difference: maxRel <= 6e-8; rtol 2e-7,
//   with atol 1e-7 for entries near 0 (rounding of lse itself).
// Backward vs finite differences: measured <= 4e-7 of the gradient scale (logSoftmax (2,1000), where
//   exp(y) of a float32 y carries ~5e-7 relative error times sum(dy) ~ 30); 2e-6 of the scale.
const BWD = { rtol: 2e-6, atol: 1e-9 };
const SM: Tolerance = { rtol: 1e-6, atol: 1e-9 };
const LSM: Tolerance = { rtol: 2e-7, atol: 1e-7 };
const ops = {
  softmax: { run: softmax, ref: softmaxRef, bref: softmaxBackwardRef, tol: SM },
  logSoftmax: { run: logSoftmax, ref: logSoftmaxRef, bref: logSoftmaxBackwardRef, tol: LSM },
};

t.test('softmax and logSoftmax over the last axis', async (t) => {
  for (const shape of [[1, 1], [3, 7], [5, 33], [2, 1000], [4, 3, 17], [33]]) {
    const [rows, cols] = lastRows(shape);
    const data = rng.normal(size(shape), 2);
    for (const [name, o] of Object.entries(ops)) {
      checkOp(t, {
        name: `${name} ${JSON.stringify(shape)}`,
        inputs: [{ data, shape }],
        run: ([x]) => o.run(x),
        ref: ([x]) => o.ref(x, rows, cols),
        forward: o.tol,
        backward: BWD,
      });
    }
  }
});

t.test('softmax and logSoftmax along a non-last axis', async (t) => {
  const shape = [4, 3, 17];
  const data = rng.normal(size(shape), 2);
  for (const axis of [0, 1, -2]) {
    for (const [name, o] of Object.entries(ops)) {
      checkOp(t, {
        name: `${name} ${JSON.stringify(shape)} axis ${axis}`,
        inputs: [{ data, shape }],
        run: ([x]) => o.run(x, axis),
        ref: ([x]) => alongAxisRef(o.ref, x, shape, axis),
        forward: o.tol,
        backward: BWD,
      });
    }
  }
});

/** Forward against the reference and backward (random dy) against the analytic float64 gradient. */
function checkAnalytic(t: Test, name: string, data: Float32Array, rows: number, cols: number,
                       gradTol: Tolerance): void {
  tidy(() => {
    const dy32 = rng.normal(rows * cols);
    for (const [op, o] of Object.entries(ops)) {
      const x = tensor(data, [rows, cols]);
      x.requiresGrad = true;
      const y = o.run(x);
      expectClose(t, `${op} ${name} forward`, y.toFloat32Array(), o.ref(data, rows, cols), o.tol);
      backward(y, tensor(dy32, [rows, cols]));
      const want = o.bref(o.ref(data, rows, cols), dy32, rows, cols);
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectClose(t, `${op} ${name} backward (analytic)`, x.grad!.toFloat32Array(), want,
        { atol: (gradTol.atol ?? 0) * scale, rtol: gradTol.rtol ?? 0 });
      x.grad?.dispose();   // leaf gradients are kept outside tidy scopes
    }
  });
}

// Rows of ±1e4 ties, 1e4 + N(0,1) (several non-trivial probabilities at a large offset), mixed signs.
function extremeRows(cols: number): Float32Array {
  const a = new Float32Array(4 * cols);
  const n = rng.normal(cols);
  for (let j = 0; j < cols; j++) {
    a[j] = rng.next() < 0.5 ? 1e4 : -1e4;
    a[cols + j] = 1e4 + n[j];
    a[2 * cols + j] = -1e4 + n[j];
    a[3 * cols + j] = (rng.next() < 0.5 ? -1e4 : 1e4) + n[j];
  }
  return a;
}

// Backward in float32 from float32 y: errors ~1e-7 of the gradient scale (measured <= 1.9e-7 with
// -inf rows, <= 6e-8 at |x| ~ 1e4); 5e-7 of the scale.
t.test('extreme logits (±1e4) neither overflow nor lose the distribution', async (t) => {
  for (const cols of [7, 33]) checkAnalytic(t, `±1e4 (4,${cols})`, extremeRows(cols), 4, cols, { atol: 5e-7 });
  // Finite differences at |x| ~ 1e4 use h = 1e-2: truncation error h²/6·f''' ~ 2e-5 of the gradient
  // scale (measured 8e-6), so this check is looser; the analytic check above is the tight one.
  const data = extremeRows(7);
  for (const [name, o] of Object.entries(ops)) {
    checkOp(t, {
      name: `${name} ±1e4 (4,7) finite differences`, inputs: [{ data, shape: [4, 7] }],
      run: ([x]) => o.run(x), ref: ([x]) => o.ref(x, 4, 7), forward: o.tol, backward: { rtol: 5e-5 },
    });
  }
});

t.test('-inf entries: masked entries get probability 0, a fully masked row gives 0 / -inf', async (t) => {
  const cols = 9;
  const data = rng.normal(3 * cols, 2);
  for (const j of [0, 4, 8]) data[j] = -Infinity;          // row 0: partly masked
  for (let j = cols; j < 2 * cols; j++) data[j] = -Infinity;   // row 1: fully masked
  checkAnalytic(t, '-inf rows', data, 3, cols, { atol: 5e-7 });
  tidy(() => {
    const y = softmax(tensor(data, [3, cols])).toFloat32Array();
    t.same(Array.from(y.slice(cols, 2 * cols)), new Array(cols).fill(0), 'softmax of an all -inf row is 0');
    t.equal(y[0] + y[4] + y[8], 0, 'masked entries have probability 0');
    const l = logSoftmax(tensor(data, [3, cols])).toFloat32Array();
    t.ok(l.slice(cols, 2 * cols).every((v) => v === -Infinity), 'logSoftmax of an all -inf row is -inf');
    t.ok([...y, ...l].every((v) => !Number.isNaN(v)), 'no NaN anywhere');
  });
});

// Cross-entropy forward: loss = (m - x_t) + log(sum) in double, one float rounding: measured maxRel
// <= 6e-8; rtol 2e-7 (atol 1e-7 for losses near 0 and the 'mean' division).
const CE: Tolerance = { rtol: 2e-7, atol: 1e-7 };
type Reduction = 'mean' | 'sum' | 'none';

function targetsFor(rows: number, cols: number, ignoreEvery = 0, ignoreIndex = -100): Int32Array {
  const tg = rng.ints(rows, cols);
  if (ignoreEvery) for (let r = 1; r < rows; r += ignoreEvery) tg[r] = ignoreIndex;
  return tg;
}

t.test('crossEntropy against the composite -logSoftmax[target], with ignored targets', async (t) => {
  const cases: [number[], Reduction, number, number][] = [
    [[1, 1], 'mean', 0, -100], [[3, 7], 'none', 2, -100], [[5, 33], 'mean', 2, -100], [[5, 33], 'sum', 3, -100],
    [[2, 1000], 'mean', 0, -100], [[4, 3, 17], 'mean', 3, -100], [[4, 3, 17], 'none', 4, -100],
    [[6, 11], 'mean', 2, 3],   // a custom ignoreIndex inside [0, V): rows whose target is 3 are skipped
  ];
  for (const [shape, reduction, every, ignoreIndex] of cases) {
    const [rows, cols] = lastRows(shape);
    const targets = targetsFor(rows, cols, every, ignoreIndex);
    checkOp(t, {
      name: `crossEntropy ${JSON.stringify(shape)} ${reduction} ignore every ${every} (index ${ignoreIndex})`,
      inputs: [{ data: rng.normal(rows * cols, 2), shape }, { data: targets, shape: shape.slice(0, -1) }],
      run: ([x, tg]) => crossEntropy(x, tg, { reduction, ignoreIndex }),
      ref: ([x, tg]) => crossEntropyRef(x, tg, rows, cols, ignoreIndex, reduction),
      forward: CE,
      backward: BWD,
    });
  }
});

t.test('crossEntropy with extreme logits: forward and analytic gradient', async (t) => {
  const cols = 33, rows = 4;
  const data = extremeRows(cols);
  const targets = targetsFor(rows, cols);
  targets[0] = data.indexOf(1e4);   // row 0: a target at one of the tied maxima
  tidy(() => {
    const x = tensor(data, [rows, cols]);
    x.requiresGrad = true;
    const loss = crossEntropy(x, tensor(targets), { reduction: 'none' });
    expectClose(t, 'crossEntropy ±1e4 forward', loss.toFloat32Array(),
      crossEntropyRef(data, targets, rows, cols, -100, 'none'), CE);
    const dl = rng.normal(rows);
    backward(loss, tensor(dl, [rows]));
    const p = softmaxRef(data, rows, cols);
    const want = p.map((v, i) => (v - (targets[Math.floor(i / cols)] === i % cols ? 1 : 0)) * dl[Math.floor(i / cols)]);
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    // The renormalised probabilities cancel lse's float rounding (~5e-4 absolute at 1e4); measured
    // 6e-8 of the gradient scale, tolerance 5e-7 (without renormalisation the error is ~5e-5 of the
    // scale here: probabilities off by up to 5e-4 relative).
    expectClose(t, 'crossEntropy ±1e4 backward (analytic)', x.grad!.toFloat32Array(), want,
      { atol: 5e-7 * scale, rtol: 0 });
    x.grad?.dispose();
  });
});

t.test('crossEntropy edge cases and errors', async (t) => {
  tidy(() => {
    const x = tensor(rng.normal(12), [3, 4]);
    const all = crossEntropy(x, tensor(new Int32Array([-100, -100, -100])));
    t.ok(Number.isNaN(all.item()), 'mean over zero kept targets is NaN (as in PyTorch)');
    t.equal(crossEntropy(x, tensor(new Int32Array([-100, -100, -100])), { reduction: 'sum' }).item(), 0,
      'sum over zero kept targets is 0');
    const masked = new Float32Array([-Infinity, -Infinity, -Infinity, -Infinity, 0, 1, 2, 3]);
    const xm = tensor(masked, [2, 4]);
    xm.requiresGrad = true;
    const l = crossEntropy(xm, tensor(new Int32Array([1, 2])), { reduction: 'none' });
    const lv = l.toFloat32Array();
    t.equal(lv[0], Infinity, 'a fully masked row has loss +inf');
    expectClose(t, 'the next row is unaffected', [lv[1]], [crossEntropyRef(masked, [1, 2], 2, 4, -100, 'none')[1]], CE);
    backward(l, tensor([1, 1], [2]));
    const g = xm.grad!.toFloat32Array();
    t.same(Array.from(g.slice(0, 4)), [0, 0, 0, 0], 'and a zero gradient (documented choice)');
    t.ok(g.slice(4).every(Number.isFinite) && Math.abs(g.slice(4).reduce((a, v) => a + v, 0)) < 1e-6,
      'the finite row gets softmax - onehot (sums to 0)');
    xm.grad?.dispose();
  });
  // Inputs are made first so that the count after the failed calls shows what the ops left behind.
  const x = tensor(rng.normal(12), [3, 4]);
  x.requiresGrad = true;
  const bads = [4, -1, 1000].map((bad) => [bad, tensor(new Int32Array([0, bad, 1]))] as const);
  const short = tensor(new Int32Array([0, 1])), floats = tensor([0, 1, 2]), ok = tensor(new Int32Array(3));
  const m0 = memory();
  for (const [bad, tg] of bads) {
    t.throws(() => crossEntropy(x, tg),
      { name: 'RangeError', message: new RegExp(`target ${bad} at row 1 is out of range \\[0, 4\\)`) },
      `target ${bad} is rejected with a RangeError naming it`);
  }
  t.throws(() => crossEntropy(x, short), /targets \[2\] must have the shape of logits \[3, 4\]/, 'shape mismatch');
  t.throws(() => crossEntropy(x, floats), { name: 'TypeError', message: /targets must be int32/ }, 'float targets');
  t.throws(() => crossEntropy(x, ok, { reduction: 'avg' as 'mean' }), /reduction must be/, 'unknown reduction');
  t.throws(() => softmax(x, 2), /axis 2 is out of range for rank 2/, 'bad axis');
  t.equal(memory().tensors, m0.tensors, 'failed calls leave no tensors behind');
  t.equal(memory().cpu.bytes, m0.cpu.bytes, 'failed calls leave no native memory behind');
  t.equal(memory().cuda.bytes, m0.cuda.bytes, 'failed calls leave no device memory behind');
  for (const v of [x, short, floats, ok, ...bads.map((b) => b[1])]) v.dispose();
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, before.tensors, 'live tensors back to baseline');
  t.equal(after.cpu.bytes, before.cpu.bytes, 'native bytes back to baseline');
  t.equal(after.cuda.bytes, before.cuda.bytes, 'device bytes back to baseline (DD2_DEFAULT_DEVICE=cuda)');
});
