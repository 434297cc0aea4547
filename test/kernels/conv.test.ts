// conv2d and upsampleNearest: forward against a direct float64 seven-loop convolution, gradients for
// x, w and b against finite differences; kernel sizes 1, 3 and 4 and rectangular 1x7 / 7x1 / 1x3 / 3x1 / 3x5,
// strides 1 and 2, padding 0 and 1 and per-axis (0, 3) / (3, 0) / (1, 2) (Inception's factorised convolutions),
// odd spatial sizes, both GEMM backends, image chunking (small column budget), and shape errors.
import t, { type Test } from 'tap';
import { conv2d, upsampleNearest } from '../../lib/tensor/ops/conv.js';
import { getDefaultDevice, tensor } from '../../lib/tensor/create.js';
import { supports } from '../../lib/tensor/kernel.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { native } from '../../lib/tensor/native.js';
import { checkOp } from '../harness/gradcheck.js';
import { expectCloseScaled, Rng, EPS32 } from '../harness/compare.js';
import { conv2dAbsRef, conv2dRef, upsampleNearestRef, type ConvDims, type ConvPad } from '../ref/conv.js';

const rng = new Rng(31);
const before = memory();
// Tests outside checkOp (which skips by itself) are skipped where the default device lacks the kernels.
const skip = supports('conv2d_forward', getDefaultDevice()) ? false : `conv kernels are not available on ${getDefaultDevice()}`;

// [N, Cin, H, W, Cout, KH, KW, stride, pad (P or [PH, PW]), bias]
type Case = [number, number, number, number, number, number, number, number, ConvPad, boolean];
const cases: Case[] = [
  [2, 3, 7, 5, 8, 3, 3, 1, 1, true],    // 3x3 same-size
  [2, 3, 7, 5, 8, 3, 3, 2, 1, true],    // 3x3 stride 2
  [1, 1, 7, 5, 1, 3, 3, 1, 0, false],   // single channel, valid
  [2, 3, 5, 7, 1, 3, 3, 2, 0, true],    // stride 2 valid, odd sizes
  [3, 8, 5, 5, 8, 3, 3, 1, 1, true],    // Cin = Cout = 8
  [2, 8, 5, 7, 3, 1, 1, 1, 0, true],    // 1x1 pointwise (no im2col)
  [2, 3, 7, 5, 8, 1, 1, 2, 0, false],   // 1x1 stride 2
  [1, 8, 5, 6, 3, 1, 1, 1, 1, true],    // 1x1 padded
  [2, 3, 8, 8, 8, 4, 4, 2, 1, true],    // VQ-GAN 4x4 stride-2 downsampling
  [2, 3, 7, 5, 3, 4, 4, 2, 1, false],   // 4x4 stride 2, odd sizes (floor)
  [1, 3, 3, 3, 3, 3, 3, 1, 0, true],    // kernel covers the whole input: 1x1 output
  [2, 1, 2, 3, 3, 3, 3, 1, 1, false],   // kernel larger than the input, fits the padded input
  [2, 3, 6, 9, 4, 1, 7, 1, [0, 3], true],   // Inception 1x7, padding (0, 3): same size
  [2, 3, 9, 6, 4, 7, 1, 1, [3, 0], true],   // Inception 7x1, padding (3, 0)
  [2, 4, 5, 6, 3, 1, 3, 1, [0, 1], false],  // Inception E 1x3, padding (0, 1)
  [2, 4, 6, 5, 3, 3, 1, 1, [1, 0], true],   // Inception E 3x1, padding (1, 0)
  [1, 2, 4, 3, 3, 1, 7, 1, [0, 3], true],   // 1x7 wider than the input (fits the padded width)
  [2, 2, 7, 8, 3, 3, 5, 2, [1, 2], true],   // 3x5 stride 2, padding (1, 2)
  [1, 2, 5, 6, 2, 3, 3, 2, [0, 1], true],   // square kernel, padding only along W
];
const dims = (c: Case): ConvDims => ({ N: c[0], Cin: c[1], H: c[2], W: c[3], Cout: c[4], KH: c[5], KW: c[6] });
const name = (c: Case): string =>
  `conv2d x[${c[0]},${c[1]},${c[2]},${c[3]}] w[${c[4]},${c[1]},${c[5]},${c[6]}] s=${c[7]} ` +
  `p=${typeof c[8] === 'number' ? c[8] : `(${c[8].join(',')})`}${c[9] ? ' +b' : ''}`;

// Forward: dot products of <= 72 float32 terms in [-1, 1], outputs up to ~6; measured max |err| 1.7e-6
// (Cin = Cout = 8, a few ulp of the partial sums), worst/tol 0.37 under atol 2e-6 + rtol 1e-6.
// Backward: dx, dw, db are float32 sums of O(1) products (db in double); measured |err| <= 2.2e-7 of
// the gradient scale (worst/tol 0.22), so rtol 1e-6 of the scale (checkOp's rule).
const fwdTol = { atol: 2e-6, rtol: 1e-6 };
const bwdTol = { rtol: 1e-6, atol: 1e-8 };

function convCase(t: Test, c: Case, label: string, grads = [true, true, true]): void {
  const d = dims(c), [stride, pad, bias] = [c[7], c[8], c[9]];
  const inputs = [
    { data: rng.uniform(d.N * d.Cin * d.H * d.W), shape: [d.N, d.Cin, d.H, d.W], grad: grads[0] },
    { data: rng.uniform(d.Cout * d.Cin * d.KH * d.KW), shape: [d.Cout, d.Cin, d.KH, d.KW], grad: grads[1] },
  ];
  if (bias) inputs.push({ data: rng.uniform(d.Cout), shape: [d.Cout], grad: grads[2] });
  checkOp(t, {
    name: `${name(c)}${label}`,
    inputs,
    run: ([x, w, b]) => conv2d(x, w, b, { stride, padding: pad }),
    ref: ([x, w, b]) => conv2dRef(x, w, bias ? b : null, d, stride, pad),
    forward: fwdTol,
    backward: bwdTol,
  });
}

t.test('conv2d forward and backward (OpenBLAS when available, else built-in GEMM)', async (t) => {
  for (const c of cases) convCase(t, c, '');
});

t.test('conv2d with the built-in GEMM kernel', { skip }, async (t) => {
  // The CPU backend switch does not reach the GPU: there the built-in CUDA GEMM replaces cuBLAS.
  const onCuda = getDefaultDevice() === 'cuda';
  if (onCuda) native.gemm_cuda_options({ builtin: true });
  else native.gemm_set_backend('builtin');
  try {
    for (const c of cases) convCase(t, c, ' [builtin]');
  } finally {
    if (onCuda) native.gemm_cuda_options({ builtin: false });
    else native.gemm_set_backend('auto');
  }
});

t.test('conv2d in image chunks (small column budget): chunk boundaries, one-image tail', async (t) => {
  // N = 5 with room for 2 images per chunk -> chunks of 2, 2, 1 (wide layout and in-place tail);
  // a budget of 1 byte -> one image per chunk.
  const c3: Case = [5, 3, 7, 5, 4, 3, 3, 1, 1, true];
  const c4: Case = [5, 2, 6, 7, 3, 4, 4, 2, 1, true];
  const c5: Case = [5, 2, 6, 7, 3, 7, 1, 1, [3, 0], true];
  try {
    for (const c of [c3, c4, c5]) {
      const [ph, pw] = typeof c[8] === 'number' ? [c[8], c[8]] : c[8];
      const OH = Math.floor((c[2] + 2 * ph - c[5]) / c[7]) + 1, OW = Math.floor((c[3] + 2 * pw - c[6]) / c[7]) + 1;
      const perImage = (c[1] * c[5] * c[6] + c[4]) * OH * OW * 4;
      process.env.DD2_CONV_COL_BYTES = String(2 * perImage + 4);
      convCase(t, c, ' [2 images per chunk]');
      process.env.DD2_CONV_COL_BYTES = '1';
      convCase(t, c, ' [1 image per chunk]');
    }
  } finally {
    delete process.env.DD2_CONV_COL_BYTES;
  }
});

t.test('conv2d when only some inputs require grad', async (t) => {
  const c: Case = [2, 3, 7, 5, 4, 3, 3, 2, 1, true];
  convCase(t, c, ' [w, b only]', [false, true, true]);
  convCase(t, c, ' [x only]', [true, false, false]);
  convCase(t, c, ' [b only]', [false, false, true]);
});

t.test('conv2d forward error is bounded by the rounding scale for wider reductions', { skip }, async (t) => {
  // CKK = 16 * 9 = 144 terms: |err| <= tol * sum|x w| with tol a few K * eps32 / sqrt(K) (random-walk
  // rounding); measured max |err|/scale ~ 1e-7.
  tidy(() => {
    const d: ConvDims = { N: 2, Cin: 16, H: 9, W: 11, Cout: 12, KH: 3, KW: 3 };
    const x = rng.normal(d.N * d.Cin * d.H * d.W), w = rng.normal(d.Cout * d.Cin * 9), b = rng.normal(d.Cout);
    const y = conv2d(tensor(x, [2, 16, 9, 11]), tensor(w, [12, 16, 3, 3]), tensor(b, [12]), { padding: 1, stride: 2 });
    const [x64, w64, b64] = [Float64Array.from(x), Float64Array.from(w), Float64Array.from(b)];
    expectCloseScaled(t, 'conv2d 16->12 3x3 s2 p1 forward', y.toFloat32Array(), conv2dRef(x64, w64, b64, d, 2, 1),
      conv2dAbsRef(x64, w64, b64, d, 2, 1), 8 * EPS32);
  });
});

t.test('conv2d shape errors', { skip }, async (t) => {
  tidy(() => {
    const x = tensor(rng.uniform(2 * 3 * 5 * 5), [2, 3, 5, 5]);
    const w = tensor(rng.uniform(4 * 3 * 3 * 3), [4, 3, 3, 3]);
    t.throws(() => conv2d(x, tensor(rng.uniform(4 * 2 * 9), [4, 2, 3, 3])),
      new RangeError('dd2: conv2d: input [2, 3, 5, 5] has 3 channels but weight [4, 2, 3, 3] expects 2'));
    t.throws(() => conv2d(tensor(rng.uniform(18), [2, 3, 3, 1]), w),
      { name: 'RangeError', message: /kernel 3x3 does not fit the padded input 3x1/ });
    t.doesNotThrow(() => conv2d(tensor(rng.uniform(6), [2, 3, 1, 1]), w, null, { padding: 1 }), 'padding makes it fit');
    t.throws(() => conv2d(x, w, null, { groups: 3 }), { name: 'RangeError', message: /groups = 3 is not supported/ });
    t.throws(() => conv2d(x, w, tensor(rng.uniform(3), [3])), /bias \[3\] must be \[4\]/);
    t.throws(() => conv2d(x, w, null, { stride: 0 }), /stride must be an integer >= 1, got 0/);
    t.throws(() => conv2d(x, w, null, { padding: -1 }), /padding must be an integer >= 0, got -1/);
    t.throws(() => conv2d(x, w, null, { padding: [1, -2] }), /padding must be an integer >= 0, got -2/);
    t.throws(() => conv2d(x, w, null, { padding: [1] as unknown as [number, number] }),
      /padding must be a number or \[padH, padW\], got \[1\]/);
    t.throws(() => conv2d(tensor(rng.uniform(2 * 3 * 5 * 1), [2, 3, 5, 1]), w, null, { padding: [1, 0] }),
      { name: 'RangeError', message: /kernel 3x3 does not fit the padded input 7x1 .*padding \(1, 0\)/ });
    t.throws(() => conv2d(tensor(rng.uniform(75), [3, 5, 5]), w), /input must be 4-D \(N, Cin, H, W\), got \[3, 5, 5\]/);
    t.throws(() => conv2d(x, tensor(rng.uniform(12), [4, 3])), /weight must be 4-D/);
  });
});

const skipUp = supports('upsample_nearest_forward', getDefaultDevice()) ? false : skip;
t.test('upsampleNearest forward and backward (factors 1, 2, 3)', { skip: skipUp }, async (t) => {
  const shapes: number[][] = [[2, 3, 4, 5], [1, 1, 1, 1], [1, 2, 3, 7]];
  for (const s of shapes) {
    for (const f of [1, 2, 3]) {
      const [N, C, H, W] = s;
      checkOp(t, {
        name: `upsampleNearest ${JSON.stringify(s)} x${f}`,
        inputs: [{ data: rng.uniform(N * C * H * W), shape: s }],
        run: ([x]) => upsampleNearest(x, f),
        ref: ([x]) => upsampleNearestRef(x, N * C, H, W, f),
        // forward is a copy; the gradient sums f*f float32 values: measured <= 7e-8 of the scale
        // (worst/tol 0.23)
        forward: { atol: 0, rtol: 0 },
        backward: { rtol: 3e-7, atol: 1e-9 },
      });
    }
  }
  tidy(() => {
    const x = tensor(rng.uniform(8), [2, 4]);
    t.throws(() => upsampleNearest(x, 2), /upsampleNearest: input must be 4-D/);
    t.throws(() => upsampleNearest(tensor(rng.uniform(4), [1, 1, 2, 2]), 1.5), /factor must be an integer >= 1, got 1.5/);
  });
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, before.tensors);
  t.equal(memory().cpu.bytes, before.cpu.bytes);
});
