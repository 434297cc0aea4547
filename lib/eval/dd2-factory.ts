// The image samplers of a DD2 generator checkpoint (meta.kind 'ar-diffusion', role 'generator'), for
// `dd2 eval --model`: the one-step generator, then, from the files the distillation run keeps next to it,
// few-step teacher-involved sampling (Algorithm 4; teacher-continuous.safetensors) and the two baselines:
// the teacher with its last k tokens predicted in one parallel pass, and independent per-position
// marginals (marginals.safetensors). Each becomes one row of the evaluation table.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CheckpointMeta } from '../io/checkpoint.js';
import { loadVQ } from '../models/vq.js';
import { loadContinuousGPT } from '../models/continuous-gpt.js';
import { loadMarginals, marginalsSampler, samplersFromFiles, teacherParallelSampler } from '../sample/dd2-samplers.js';
import type { ImageSampler } from './sampler.js';
import type { SamplerOptions } from './registry.js';

export function dd2SamplerFactory(path: string, meta: CheckpointMeta, o: SamplerOptions): ImageSampler[] {
  const dir = dirname(path);
  const teacherPath = join(dir, 'teacher-continuous.safetensors');
  const marginalsPath = join(dir, 'marginals.safetensors');
  const haveTeacher = existsSync(teacherPath);
  const sampling = { cfg: o.cfg, temperature: o.temperature, topK: o.topK, topP: o.topP };
  const fewStep = (o.fewStep ?? [4]).filter(() => haveTeacher);
  const out: ImageSampler[] = samplersFromFiles({ generator: path, tokenizer: o.tokenizer, fewStep, sampling });
  if (o.baselines === false) return out;
  const vqPath = o.tokenizer ?? meta.tokenizer;
  try {
    if (vqPath && existsSync(marginalsPath)) {
      const m = loadMarginals(marginalsPath);
      out.push(marginalsSampler(m.table, loadVQ(vqPath), out[0].numClasses));
      if (haveTeacher) {
        for (const k of o.parallelK ?? [Math.floor(m.N / 2)]) {
          out.push(teacherParallelSampler(loadContinuousGPT(teacherPath).model, loadVQ(vqPath), k, m.table, sampling));
        }
      }
    }
  } catch (e) {
    for (const s of out) s.dispose();
    throw e;
  }
  return out;
}
