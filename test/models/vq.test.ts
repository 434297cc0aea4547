// The VQ tokenizer model (lib/models/vq.ts): shapes of the forward pass and of every gradient, the
// straight-through estimator (the decoder's gradient reaches the encoder unchanged, the codebook gets none
// from it), L2-normalised codes and latents, nearest-code search against a float64 brute force, dead-code
// restarts (lib/train/tokenizer.ts), encode -> decodeIndices, and checkpoint save/load equality.
// Letters: B batch, C image channels, S image size, h/w token grid, D code dimension, K codebook size.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { backward } from '../../lib/autograd/tape.js';
import { add, mul, square, sub } from '../../lib/tensor/ops/elementwise.js';
import { contiguous, permute } from '../../lib/tensor/ops/shape.js';
import { sum } from '../../lib/tensor/ops/reduce.js';
import { saveModel } from '../../lib/io/checkpoint.js';
import { EMA } from '../../lib/nn/optim.js';
import { defaultVQConfig, l2Normalize, levelsFor, loadVQ, meanOf, nearestCode, usageStats, VQModel,
  type VQConfig } from '../../lib/models/vq.js';
import { CodeUsage, restartDeadCodes } from '../../lib/train/tokenizer.js';
import { expectClose, Rng } from '../harness/compare.js';

const dir = mkdtempSync(join(tmpdir(), 'dd2-vq-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const base = memory();

// 12x12 images, 3x3 tokens (downsample 4: levels at 12, 6, 3), 2 channels to catch NCHW/NHWC mix-ups.
const small: VQConfig = { ...defaultVQConfig, imageSize: 12, imageChannels: 2, ...levelsFor(4), channels: 4,
  zChannels: 8, codebookSize: 13, codeDim: 4, groups: 2 };
const B = 3, [h, w] = [3, 3], N = B * h * w;

function images(rng: Rng, b = B, cfg = small): Float32Array {
  return rng.uniform(b * cfg.imageChannels * cfg.imageSize * cfg.imageSize, -1, 1);
}

t.test('forward shapes and a gradient of the right shape for every parameter', async (t) => {
  const m = new VQModel(small, 1);
  t.same(m.gridSize, [h, w], 'grid 3x3');
  t.equal(m.codebookSize, 13);
  tidy(() => {
    const x = tensor(images(new Rng(1)), [B, 2, 12, 12]);
    const o = m.forward(x);
    t.same(o.recon.shape, [B, 2, 12, 12], 'recon (B, C, S, S)');
    t.same(o.z.shape, [N, 4], 'z (N, D)');
    t.same(o.zq.shape, [B, 4, h, w], 'zq (B, D, h, w)');
    t.same(o.idx.shape, [B, h, w], 'idx (B, h, w)');
    t.equal(o.idx.dtype, 'int32');
    t.equal(o.entropyLoss, null, 'no entropy term by default');
    const loss = add(add(meanOf(square(sub(o.recon, x))), o.codebookLoss), o.commitLoss);
    backward(loss);
    const missing = m.namedParameters().filter(([, p]) => !p.grad || p.grad.shape.join() !== p.shape.join()).map(([k]) => k);
    t.same(missing, [], `all ${m.parameters().length} parameters have a gradient of their shape`);
    const names = m.namedParameters().map(([k]) => k);
    for (const k of ['encoder.conv_in.weight', 'encoder.conv_blocks.1.res.0.conv1.weight', 'encoder.conv_blocks.0.downsample.conv.weight',
      'encoder.mid.norm1.weight', 'quant_conv.weight', 'quantize.embedding.weight', 'post_quant_conv.bias',
      'decoder.conv_blocks.0.upsample.conv.weight', 'decoder.norm_out.bias', 'decoder.conv_out.weight']) {
      t.ok(names.includes(k), `LlamaGen-style parameter name ${k}`);
    }
  });
  m.zeroGrad();
  // the entropy term, when on, is a finite scalar with gradients
  const me = new VQModel({ ...small, entropyWeight: 0.1 }, 1);
  tidy(() => {
    const o = me.encode(tensor(images(new Rng(2)), [B, 2, 12, 12]));
    t.ok(o.entropyLoss && o.entropyLoss.size === 1 && Number.isFinite(o.entropyLoss.item()), 'entropy term is a finite scalar');
    backward(o.entropyLoss!);
    t.ok(me.codebook.weight.grad, 'the entropy term reaches the codebook');
  });
  me.dispose();
  m.dispose();
});

t.test('straight-through: the gradient through zq equals the gradient through z', async (t) => {
  const m = new VQModel(small, 2);
  const rng = new Rng(3);
  const x = images(rng), up = rng.normal(N * 4);
  const grads = (via: 'zq' | 'z'): Map<string, Float32Array> => tidy(() => {
    m.zeroGrad();
    const o = m.encode(tensor(x, [B, 2, 12, 12]));
    // the same upstream gradient on (b, i, j, d): through the quantised latents, or the raw ones
    const g = tensor(up, [B, h, w, 4]);
    const target = via === 'zq' ? contiguous(permute(o.zq, [0, 2, 3, 1])) : o.z;
    backward(sum(mul(target, via === 'zq' ? g : tensor(up, [N, 4]))));
    const out = new Map(m.namedParameters().filter(([, p]) => p.grad).map(([k, p]) => [k, p.grad!.toFloat32Array()]));
    m.zeroGrad();
    return out;
  });
  const a = grads('zq'), b = grads('z');
  t.notOk(a.has('quantize.embedding.weight'), 'no codebook gradient through the straight-through path');
  t.notOk(a.has('decoder.conv_out.weight'), 'the decoder is not involved');
  t.same([...a.keys()], [...b.keys()], 'same parameters receive gradients');
  const w0 = a.get('encoder.conv_in.weight')!;
  t.ok(w0.some((v) => v !== 0), 'the encoder input conv gets a non-zero gradient');
  // zq = z + (q - z) computed in float32 differs from z by rounding only; the backward is the identity
  for (const k of ['encoder.conv_in.weight', 'encoder.mid.conv2.weight', 'quant_conv.weight']) {
    expectClose(t, `dL/d${k} via zq vs via z`, a.get(k)!, b.get(k)!, { atol: 0, rtol: 0 });
  }
  m.dispose();
});

t.test('codes and latents are L2-normalised and zq holds the chosen codes', async (t) => {
  const m = new VQModel(small, 4);
  noGrad(() => tidy(() => {
    const norms = (a: Float32Array, D: number): number[] =>
      Array.from({ length: a.length / D }, (_, i) => Math.hypot(...a.subarray(i * D, (i + 1) * D)));
    const codes = m.codes().toFloat32Array();
    const raw = m.codebook.weight.toFloat32Array();
    t.ok(norms(raw, 4).every((v) => Math.abs(v - 1) < 1e-6), 'the codebook starts as unit vectors');
    t.ok(norms(codes, 4).every((v) => Math.abs(v - 1) < 1e-6), 'codes() rows have unit norm');
    const o = m.encode(tensor(images(new Rng(5)), [B, 2, 12, 12]));
    t.ok(norms(o.z.toFloat32Array(), 4).every((v) => Math.abs(v - 1) < 1e-6), 'z rows have unit norm');
    const zq = contiguous(permute(o.zq, [0, 2, 3, 1])).toFloat32Array(), idx = o.idx.toInt32Array();
    const want = new Float32Array(N * 4);
    idx.forEach((k, i) => want.set(codes.subarray(k * 4, k * 4 + 4), i * 4));
    // zq = z + (q - z) in float32: within a few ulps of q (|values| <= 1); measured maxAbs 3.0e-8
    expectClose(t, 'zq rows = codes[idx]', zq, want, { atol: 1e-7, rtol: 0 });
  }));
  m.dispose();
});

t.test('nearestCode matches a float64 brute-force cosine search', async (t) => {
  const rng = new Rng(6);
  for (const [n, K, D] of [[1, 1, 1], [37, 53, 8], [200, 512, 8], [7, 3, 33]]) {
    noGrad(() => tidy(() => {
      const zn = l2Normalize(tensor(rng.normal(n * D), [n, D])), en = l2Normalize(tensor(rng.normal(K * D), [K, D]));
      const got = nearestCode(zn, en).toInt32Array();
      const z = zn.toFloat32Array(), e = en.toFloat32Array();
      let bad = 0, worstGap = 0;
      for (let i = 0; i < n; i++) {
        let best = -Infinity, arg = -1;
        const dots = Array.from({ length: K }, (_, k) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += z[i * D + d] * e[k * D + d];
          return s;
        });
        dots.forEach((s, k) => { if (s > best) { best = s; arg = k; } });
        // a different index is acceptable only for a float32 tie (gap below 1e-6 in cosine)
        const gap = best - dots[got[i]];
        worstGap = Math.max(worstGap, gap);
        if (got[i] !== arg && gap > 1e-6) bad++;
      }
      t.equal(bad, 0, `n=${n} K=${K} D=${D}: every row gets its most similar code (largest cosine gap ${worstGap.toExponential(1)})`);
    }));
  }
});

t.test('dead-code restarts replace exactly the unused codes with encoder outputs', async (t) => {
  const m = new VQModel(small, 7);
  const usage = new CodeUsage(13);
  const before = m.codebook.weight.toFloat32Array();
  // steps 1..20: only codes 0..5 are chosen; code 6 was last used at step 1
  usage.record(Int32Array.from([0, 1, 2, 3, 4, 5, 6]), 1);
  for (let s = 2; s <= 20; s++) usage.record(Int32Array.from([0, 1, 2, 3, 4, 5, 5]), s);
  t.same(usage.dead(20, 20), [7, 8, 9, 10, 11, 12], 'never-used codes are dead after 20 steps');
  t.same(usage.dead(21, 20), [6, 7, 8, 9, 10, 11, 12], 'code 6 is dead once 20 batches passed without it');
  const z = noGrad(() => tidy(() => l2Normalize(tensor(new Rng(8).normal(10 * 4), [10, 4])).toFloat32Array()));
  const ema = new EMA(m, 0.9);
  const restarted = restartDeadCodes(m, usage, z, 21, 20, new Generator(9), ema);
  t.same(restarted, [6, 7, 8, 9, 10, 11, 12], 'the dead codes are restarted');
  t.equal(usage.restarts, 7, 'restart count');
  t.same(usage.dead(21, 20), [], 'restarted codes get a fresh window');
  const after = m.codebook.weight.toFloat32Array();
  t.same(after.subarray(0, 24), before.subarray(0, 24), 'live codes 0..5 are untouched');
  const rows = Array.from({ length: 10 }, (_, j) => Array.from(z.subarray(j * 4, j * 4 + 4)).join());
  const picked = restarted.map((k) => rows.indexOf(Array.from(after.subarray(k * 4, k * 4 + 4)).join()));
  t.ok(picked.every((j) => j >= 0), `each restarted code is one of the batch's z rows (rows ${picked.join(', ')})`);
  t.ok(new Set(picked).size > 1, 'the rows are drawn at random, not all the same');
  const shadow = ema.shadow[ema.params.indexOf(m.codebook.weight)].toFloat32Array();
  t.same(shadow, after, 'the EMA of the codebook gets the restarted rows (and keeps the others)');
  ema.dispose();
  const again = restartDeadCodes(m, CodeUsage.fromState(13, usage.state()), z, 21, 20, new Generator(9));
  t.same(again, [], 'state round trip keeps the usage');
  // usage statistics over counts
  const u = usageStats([4, 4, 0, 0]);
  t.same([u.used, u.fraction], [2, 0.5], 'codes in use');
  t.ok(Math.abs(u.perplexity - 2) < 1e-12, 'perplexity of two equally used codes is 2');
  m.dispose();
});

t.test('encode -> decodeIndices, and save/load of a checkpoint', async (t) => {
  const m = new VQModel(small, 10).eval();
  const x = images(new Rng(11));
  const first = noGrad(() => tidy(() => {
    const o = m.encode(tensor(x, [B, 2, 12, 12]));
    const img = m.decodeIndices(o.idx);
    t.same(img.shape, [B, 2, 12, 12], 'decodeIndices gives (B, C, S, S)');
    const v = img.toFloat32Array();
    t.ok(v.every((q) => q >= -1 && q <= 1), 'decoded images lie in [-1, 1]');
    const viaZq = m.decode(o.zq).toFloat32Array().map((q) => Math.min(1, Math.max(-1, q)));
    // zq differs from the codes by float32 rounding (3e-8, above); through the decoder that became a measured
    // maxAbs of 1.2e-6 on outputs of size ~1
    expectClose(t, 'decodeIndices(idx) = clamp(decode(zq))', v, viaZq, { atol: 3e-6, rtol: 0 });
    t.throws(() => m.decodeIndices(tensor(new Int32Array(4), [1, 2, 2], { dtype: 'int32' })), RangeError, 'wrong grid throws');
    return { idx: o.idx.toInt32Array(), img: v };
  }));
  const path = join(dir, 'vq.safetensors');
  saveModel(path, m, { kind: 'vq', config: m.cfg, step: 5 });
  const back = loadVQ(path);
  t.same(back.cfg, m.cfg, 'config restored from the checkpoint meta');
  const a = m.stateDict(), b = back.stateDict();
  t.same([...b.keys()], [...a.keys()], 'same state-dict names');
  t.ok([...a].every(([k, v]) => Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer))), 'identical values, bit for bit');
  noGrad(() => tidy(() => {
    const o = back.encode(tensor(x, [B, 2, 12, 12]));
    t.same(o.idx.toInt32Array(), first.idx, 'the loaded model gives the same codes');
    t.same(back.decodeIndices(o.idx).toFloat32Array(), first.img, 'and the same images');
  }));
  saveModel(join(dir, 'other.safetensors'), m, { kind: 'gpt', config: {}, step: 0 });
  t.throws(() => loadVQ(join(dir, 'other.safetensors')), /not a VQ tokenizer/, 'another kind is refused');
  t.throws(() => new VQModel({ ...small, channelMult: [1, 2] }), /channelMult/, 'bad config names the field');
  back.dispose();
  m.dispose();
});

t.test('no tensors leak', async (t) => {
  const after = memory();
  t.equal(after.tensors, base.tensors, 'tensors back to baseline');
  t.equal(after.cpu.bytes, base.cpu.bytes, 'bytes back to baseline');
});
