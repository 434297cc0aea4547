// Shared fixtures of the distillation tests: a tabular teacher over V = 4 codes at the corners (±1, ±1)/√2 of
// the plane, N = 3 positions, one class, with strong dependence (q2 = q1 with probability 0.9; q3 = (q1 + q2)
// mod 4 with probability 0.8), and a tiny AR-diffusion model for it (ContinuousGPT with a 1×3 grid).
import { Generator } from '../../lib/tensor/random.js';
import { resolveGPTConfig } from '../../lib/models/gpt.js';
import { ContinuousGPT } from '../../lib/models/continuous-gpt.js';
import { ARDiffusion } from '../../lib/models/ar-diffusion.js';
import { TabularTeacher } from '../../lib/distill/teacher.js';

export const V = 4, C = 2, N = 3;

export function cornerTeacher(): TabularTeacher {
  const s = Math.SQRT1_2;
  const codebook = Float32Array.from([s, s, -s, s, -s, -s, s, -s]);
  const t0 = Float32Array.from([0.4, 0.3, 0.2, 0.1]);
  const t1 = new Float32Array(V * V), t2 = new Float32Array(V * V * V);
  for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) t1[a * V + b] = a === b ? 0.9 : 0.1 / 3;
  for (let a = 0; a < V; a++) {
    for (let b = 0; b < V; b++) for (let c = 0; c < V; c++) t2[(a * V + b) * V + c] = c === (a + b) % V ? 0.8 : 0.2 / 3;
  }
  return new TabularTeacher({ codebook, V, C, N, numClasses: 1, tables: [t0, t1, t2] });
}

export interface TinyOptions { dim?: number; layers?: number; width?: number; depth?: number; seed?: number }

/** ψ0 for the tabular teacher: a fresh continuous backbone (1×3 grid) with a fresh MLP head. */
export function tinyARDiffusion(o: TinyOptions = {}): ARDiffusion {
  const gen = new Generator(o.seed ?? 1);
  const gpt = resolveGPTConfig({ vocabSize: V, numClasses: 1, gridH: 1, gridW: N, dim: o.dim ?? 32, nLayer: o.layers ?? 2, nHead: 2,
    classDropoutProb: 0, tokenDropoutP: 0, residDropoutP: 0, ffnDropoutP: 0 });
  const backbone = new ContinuousGPT({ gpt, codeDim: C, inputHidden: 32 }, gen);
  try {
    return ARDiffusion.fromTeacher(backbone, { width: o.width ?? 64, depth: o.depth ?? 2, freqDim: 64 }, gen);
  } finally {
    backbone.dispose();
  }
}
