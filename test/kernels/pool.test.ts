// maxPool2d, avgPool2d (countIncludePad true / false) and resizeBilinear ('pytorch' half-pixel and 'tf1'
// asymmetric): forward against the float64 references in test/ref/pool.ts, gradients against finite
// differences; Inception's geometries (3x3 stride 2, 3x3 stride 1 padding 1), rectangular windows,
// strides and padding, windows covering the whole input, up- and downsampling, ties and NaN in max
// pooling, argument errors. Runs on the default device (DD2_DEFAULT_DEVICE=cuda for the GPU kernels).
import t from 'tap';
import { avgPool2d, maxPool2d, resizeBilinear, type Size2 } from '../../lib/tensor/ops/pool.js';
import { getDefaultDevice, tensor } from '../../lib/tensor/create.js';
import { supports } from '../../lib/tensor/kernel.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { backward } from '../../lib/autograd/tape.js';
import { checkOp } from '../harness/gradcheck.js';
import { Rng } from '../harness/compare.js';
import { avgPool2dRef, maxPool2dRef, resizeBilinearRef, type PoolDims } from '../ref/pool.js';

const rng = new Rng(47);
const before = memory();
const skip = supports('max_pool2d_forward', getDefaultDevice()) ? false : `pool kernels are not available on ${getDefaultDevice()}`;

// [N, C, H, W, kernel, stride, padding]
type PoolCase = [number, number, number, number, Size2, Size2, Size2];
const poolCases: PoolCase[] = [
  [2, 3, 7, 6, 3, 2, 0],             // Inception stem / reduction max pool 3/2
  [2, 3, 5, 6, 3, 1, 1],             // Inception pool branch 3/1/1
  [1, 2, 8, 8, 2, 2, 0],             // 2x2 non-overlapping
  [2, 2, 7, 5, 3, 2, 1],             // 3/2/1 (ResNet stem)
  [1, 3, 6, 7, [2, 3], [1, 2], [1, 1]], // rectangular window, stride and padding
  [2, 1, 4, 3, [4, 3], 1, 0],         // window = whole input: 1x1 output
  [1, 2, 1, 6, [1, 3], [1, 2], [0, 1]], // one-row planes
  [1, 1, 2, 2, 3, 1, 1],              // window larger than the input (fits the padded input)
];
const dims = (c: PoolCase): PoolDims => {
  const p = (v: Size2): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);
  const [KH, KW] = p(c[4]), [SH, SW] = p(c[5]), [PH, PW] = p(c[6]);
  return { NC: c[0] * c[1], H: c[2], W: c[3], KH, KW, SH, SW, PH, PW };
};
const pname = (op: string, c: PoolCase): string =>
  `${op} x[${c.slice(0, 4).join(',')}] k=${JSON.stringify(c[4])} s=${JSON.stringify(c[5])} p=${JSON.stringify(c[6])}`;

// Max pooling copies values: forward exact. Its gradient routes dy unchanged (sums of at most
// KH*KW float32 terms where windows overlap): measured <= 2e-7 of the gradient scale.
// Average pooling: float32 sums of <= 12 terms and one division: measured forward |err| <= 6e-8,
// gradient <= 2e-7 of the scale.
t.test('maxPool2d forward and backward', async (t) => {
  for (const c of poolCases) {
    const d = dims(c);
    checkOp(t, {
      name: pname('maxPool2d', c),
      inputs: [{ data: rng.uniform(d.NC * d.H * d.W), shape: c.slice(0, 4) as number[] }],
      run: ([x]) => maxPool2d(x, c[4], { stride: c[5], padding: c[6] }),
      ref: ([x]) => maxPool2dRef(x, d),
      forward: { atol: 0, rtol: 0 },
      backward: { rtol: 1e-6, atol: 1e-9 },
    });
  }
});

t.test('avgPool2d forward and backward, countIncludePad true and false', async (t) => {
  for (const c of poolCases) {
    const d = dims(c);
    for (const countIncludePad of [true, false]) {
      checkOp(t, {
        name: `${pname('avgPool2d', c)} countIncludePad=${countIncludePad}`,
        inputs: [{ data: rng.uniform(d.NC * d.H * d.W), shape: c.slice(0, 4) as number[] }],
        run: ([x]) => avgPool2d(x, c[4], { stride: c[5], padding: c[6], countIncludePad }),
        ref: ([x]) => avgPool2dRef(x, d, countIncludePad),
        forward: { atol: 2e-7, rtol: 2e-7 },
        backward: { rtol: 1e-6, atol: 1e-9 },
      });
    }
  }
});

t.test('pool defaults: stride = kernel, padding 0, countIncludePad true', { skip }, async (t) => {
  tidy(() => {
    const data = rng.uniform(2 * 9 * 9);
    const x = tensor(data, [1, 2, 9, 9]);
    const d: PoolDims = { NC: 2, H: 9, W: 9, KH: 3, KW: 3, SH: 3, SW: 3, PH: 0, PW: 0 };
    t.same([...maxPool2d(x, 3).toFloat32Array()], [...Float32Array.from(maxPool2dRef(Float64Array.from(data), d))]);
    t.same(avgPool2d(x, 3, { padding: 1, stride: 3 }).shape, [1, 2, 3, 3]);
    const a = avgPool2d(x, 3, { padding: 1, stride: 1 }).toFloat32Array();
    // corner window holds 4 inputs of 9 cells: the default divides by 9
    const want = (data[0] + data[1] + data[9] + data[10]) / 9;
    t.ok(Math.abs(a[0] - want) < 1e-7, `corner average ${a[0]} vs ${want} (divisor 9)`);
  });
});

t.test('maxPool2d ties route the gradient to the first maximum; NaN propagates', { skip }, async (t) => {
  tidy(() => {
    // one 3x3 window over a plane of equal values: the gradient lands on element 0 only
    const x = tensor(new Float32Array(9).fill(0.5), [1, 1, 3, 3]);
    x.requiresGrad = true;
    const y = maxPool2d(x, 3);
    backward(y, tensor(new Float32Array([2]), [1, 1, 1, 1]));
    t.same([...x.grad!.toFloat32Array()], [2, 0, 0, 0, 0, 0, 0, 0, 0]);
    x.grad!.dispose();
    const v = new Float32Array([1, NaN, 3, -Infinity, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    const m = maxPool2d(tensor(v, [1, 1, 4, 4]), 2).toFloat32Array();
    t.ok(Number.isNaN(m[0]), `window holding NaN gives NaN (got ${m[0]})`);
    t.same([...m.slice(1)], [8, 14, 16]);
    const allInf = maxPool2d(tensor(new Float32Array(4).fill(-Infinity), [1, 1, 2, 2]), 2).toFloat32Array();
    t.equal(allInf[0], -Infinity);
  });
});

// [N, C, H, W, OH, OW]
const resizeCases: [number, number, number, number, number, number][] = [
  [2, 3, 5, 7, 12, 9],     // upsample both axes, different factors
  [1, 2, 11, 13, 4, 5],    // downsample
  [1, 2, 6, 6, 6, 6],      // identity size
  [2, 1, 1, 5, 3, 8],      // one-row input
  [1, 1, 9, 8, 299, 299],  // to Inception's 299 from a small image (scale ~ 1/35)
  [1, 1, 40, 33, 17, 61],  // down along H, up along W
];
// Forward: the kernels compute source coordinates in float32 (scale = in/out rounded, then a multiply and
// a subtraction, as PyTorch does), the reference in float64, so a weight can be off by a few 2^-24 * src
// <= 2^-22 * n (n the input size along the axis); times |x1 - x0| <= 2 for inputs in [-1, 1] that gives
// atol = 2^-21 * max(H, W). Measured: 9.0e-7 at n = 9 (worst/tol 0.21), 5.4e-6 at n = 40 (0.28).
// Gradients: sums of those weights times dy, so the same bound relative to the gradient scale;
// measured 2.3e-6 of the scale at n = 9 (worst/tol 0.54), 3.7e-6 at n = 40 (0.20).
t.test('resizeBilinear forward and backward, pytorch and tf1 modes', async (t) => {
  for (const mode of ['pytorch', 'tf1'] as const) {
    for (const [N, C, H, W, OH, OW] of resizeCases) {
      checkOp(t, {
        name: `resizeBilinear ${mode} [${N},${C},${H},${W}] -> ${OH}x${OW}`,
        inputs: [{ data: rng.uniform(N * C * H * W), shape: [N, C, H, W] }],
        run: ([x]) => resizeBilinear(x, [OH, OW], { mode }),
        ref: ([x]) => resizeBilinearRef(x, N * C, H, W, OH, OW, mode),
        forward: { atol: 2 ** -21 * Math.max(H, W), rtol: 0 },
        backward: { rtol: 2 ** -21 * Math.max(H, W), atol: 1e-9 },
        coords: 32,
      });
    }
  }
});

t.test('resizeBilinear matches known values', { skip }, async (t) => {
  tidy(() => {
    // 2 -> 4 half-pixel: src = (o + 0.5) / 2 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped to the edge)
    const y = resizeBilinear(tensor(new Float32Array([0, 1]), [1, 1, 1, 2]), [1, 4]).toFloat32Array();
    t.same([...y], [0, 0.25, 0.75, 1]);
    // tf1: src = o / 2 = 0, 0.5, 1, 1.5 -> 0, 0.5, 1, 1
    const z = resizeBilinear(tensor(new Float32Array([0, 1]), [1, 1, 1, 2]), [1, 4], { mode: 'tf1' }).toFloat32Array();
    t.same([...z], [0, 0.5, 1, 1]);
  });
});

t.test('pool and resize argument errors', { skip }, async (t) => {
  tidy(() => {
    const x = tensor(rng.uniform(2 * 3 * 5 * 5), [2, 3, 5, 5]);
    t.throws(() => maxPool2d(x, 3, { padding: 2 }), /padding \(2, 2\) must be at most half the kernel 3x3/);
    t.throws(() => avgPool2d(x, [2, 0]), /kernel must be an integer >= 1 or a pair of them, got \[2,0\]/);
    t.throws(() => maxPool2d(x, 7), /kernel 7x7 does not fit the padded input 5x5/);
    t.throws(() => maxPool2d(x, 2, { stride: 0 }), /stride must be an integer >= 1/);
    t.throws(() => avgPool2d(tensor(rng.uniform(25), [1, 5, 5]), 2), /input must be 4-D \(N, C, H, W\), got \[1, 5, 5\]/);
    t.throws(() => resizeBilinear(x, [0, 3]), /size must be an integer >= 1/);
    t.throws(() => resizeBilinear(x, 4, { mode: 'nearest' as 'tf1' }), /mode must be 'pytorch' or 'tf1', got 'nearest'/);
  });
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
});
