// The sampler registry (lib/eval/registry.ts) and the AR teacher as an ImageSampler (lib/eval/ar-sampler.ts):
// the meta is read from the safetensors header alone, a 'gpt' checkpoint opens with its recorded tokenizer,
// generate() is sampleTokens with Generator(seed) (same seed, same tokens), decode() is the VQ decoder of
// those indices, and factories can be registered for other kinds.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../lib/tensor/create.js';
import { memory, noGrad, tidy } from '../../lib/tensor/engine.js';
import { Generator } from '../../lib/tensor/random.js';
import { reshape } from '../../lib/tensor/ops/shape.js';
import { saveModel } from '../../lib/io/checkpoint.js';
import { defaultVQConfig, levelsFor, loadVQ, VQModel, type VQConfig } from '../../lib/models/vq.js';
import { GPT, loadGPT, resolveGPTConfig } from '../../lib/models/gpt.js';
import { sampleTokens } from '../../lib/sample/ar-sample.js';
import { datasetOfCheckpoint, openSamplers, readCheckpointMeta, registerSamplerFactory, samplerKinds,
  type SamplerOptions } from '../../lib/eval/registry.js';

const base = memory();
const dir = mkdtempSync(join(tmpdir(), 'dd2-ar-sampler-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const cfg: VQConfig = { ...defaultVQConfig, imageSize: 8, imageChannels: 1, ...levelsFor(4), channels: 4, zChannels: 8,
  codebookSize: 12, codeDim: 4, groups: 2 };
const vqPath = join(dir, 'vq.safetensors'), gptPath = join(dir, 'gpt.safetensors');
{
  const vq = new VQModel(cfg, 1);
  saveModel(vqPath, vq, { kind: 'vq', config: cfg, step: 3, options: { dataset: 'fashion-mnist' } });
  vq.dispose();
  const g = resolveGPTConfig({ vocabSize: 12, numClasses: 5, gridH: 2, gridW: 2, dim: 16, nLayer: 1, nHead: 2, multipleOf: 16 });
  const gpt = new GPT(g, new Generator(2));
  saveModel(gptPath, gpt, { kind: 'gpt', config: g, step: 7, tokenizer: vqPath });
  gpt.dispose();
}
const o: SamplerOptions = { cfg: 2, temperature: 1, topK: 0, topP: 1, batch: 4 };

t.test('meta from the header', async (t) => {
  const m = readCheckpointMeta(gptPath);
  t.same([m.kind, m.step, m.tokenizer], ['gpt', 7, vqPath]);
  t.equal(datasetOfCheckpoint(m), 'fashion-mnist', "the dataset comes from the tokenizer's meta");
  t.equal(datasetOfCheckpoint({ kind: 'x', config: {}, step: 0 }), null, 'nothing recorded: null');
  const junk = join(dir, 'junk.safetensors');
  writeFileSync(junk, 'abc');
  t.throws(() => readCheckpointMeta(junk), /not a safetensors file/);
  t.throws(() => readCheckpointMeta(join(dir, 'none.safetensors')), /does not exist/);
});

t.test('the AR teacher sampler', async (t) => {
  const { samplers, meta } = openSamplers(gptPath, o);
  t.equal(meta.kind, 'gpt');
  t.equal(samplers.length, 1);
  const s = samplers[0];
  t.same([s.name, s.steps, s.numClasses, s.channels, s.size], ['teacher', 4, 5, 1, 8]);
  t.equal(s.noiseShape, undefined, 'not noise-driven');
  const labels = Int32Array.of(0, 3, 4);
  const model = loadGPT(gptPath), vq = loadVQ(vqPath);
  noGrad(() => tidy(() => {
    const a = s.generate(labels, 11), b = s.generate(labels, 11), c = s.generate(labels, 12);
    t.same(a.shape, [3, 4], 'tokens (B, N)');
    t.equal(a.dtype, 'int32');
    t.same(Array.from(a.toInt32Array()), Array.from(b.toInt32Array()), 'same seed, same tokens');
    const ref = sampleTokens(model, labels, new Generator(11), { cfg: 2 });
    t.same(Array.from(a.toInt32Array()), Array.from(ref), 'generate = sampleTokens with Generator(seed) and the options');
    t.notSame(Array.from(a.toInt32Array()), Array.from(c.toInt32Array()), 'another seed, other tokens');
    const img = s.decode(a);
    t.same(img.shape, [3, 1, 8, 8], 'images (B, ch, S, S)');
    const direct = vq.decodeIndices(reshape(tensor(ref, [3, 4]), [3, 2, 2])).toFloat32Array();
    t.same(Array.from(img.toFloat32Array()), Array.from(direct), 'decode = the VQ decoder of the indices');
    t.throws(() => s.decode(tensor(new Float32Array(12), [3, 4])), /expected int32 token indices/);
  }));
  model.dispose(); vq.dispose();
  s.dispose();
  t.throws(() => openSamplers(gptPath, { ...o, tokenizer: join(dir, 'missing.safetensors') }), /--tokenizer: .*missing\.safetensors does not exist/);
  t.throws(() => openSamplers(vqPath, o), /holds a 'vq' checkpoint; images can be drawn from ('ar-diffusion', )?'gpt'/);
});

t.test('registering a factory for another kind', async (t) => {
  const path = join(dir, 'other.safetensors');
  const vq = new VQModel(cfg, 3);
  saveModel(path, vq, { kind: 'toy-kind', config: cfg, step: 0 });
  vq.dispose();
  let seen: SamplerOptions | null = null;
  registerSamplerFactory('toy-kind', (p, meta, opts) => {
    seen = opts;
    t.equal(p, path);
    t.equal(meta.kind, 'toy-kind');
    return [];
  });
  t.ok(samplerKinds().includes('toy-kind') && samplerKinds().includes('gpt'));
  t.throws(() => openSamplers(path, o), /factory returned no sampler/, 'a factory must give at least one sampler');
  t.same(seen, o, 'the options reach the factory');
});

t.test('no tensors leak', async (t) => {
  t.equal(memory().tensors, base.tensors, 'live tensors back to the start');
});
