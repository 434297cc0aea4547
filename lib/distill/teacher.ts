// Teachers as conditional score models (METHOD §2): a ScoreTeacher gives, for every token position of a
// batch of continuous token sequences, the next-token probability vector p(· | z_<i) after the teacher's
// sampling settings (CFG, temperature, top-k, top-p); with the codebook that defines the Gaussian-mixture
// conditional score of lib/tensor/ops/cond-score.ts. It also samples sequences (the stage-1 data).
// ARScoreTeacher wraps the continuous-input GPT (the adapted teacher); TabularTeacher is an exact joint
// over V codes given as conditional tables (tests: its joint is known in closed form).
// Letters: B batch, N tokens per image, C code dim, V codebook size, K top-k width, R rows (B or 2B).
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import type { Generator } from '../tensor/random.js';
import { concat, contiguous, reshape, slice } from '../tensor/ops/shape.js';
import { flowToCodes } from './flow-map.js';
import { embedding } from '../tensor/ops/index.js';
import type { MixtureProbs } from '../tensor/ops/cond-score.js';
import { processLogits } from '../sample/ar-sample.js';
import type { ContinuousGPT } from '../models/continuous-gpt.js';

export interface ScoreTeacher {
  /** (V, C) code vectors: the support of every next-token distribution */
  readonly codebook: Tensor;
  /** N tokens per sequence */
  readonly seqLen: number;
  readonly numClasses: number;
  readonly codeDim: number;
  /**
   * p(· | z_<i) for every position: labels int32 (B), z (B, N, C) continuous tokens (the prefix is read,
   * position i's own token is not) -> B·N rows in (b, i) order: dense (B·N, V), or top-k sparse idx/val
   * (B·N, K). New tensors on z's device; the caller disposes them.
   */
  probs(labels: Tensor, z: Tensor): MixtureProbs;
  /**
   * Sequences drawn from the teacher: z (B, N, C) code vectors and their indices (B·N). With `flow`, each token
   * is the end of the flow map (lib/distill/flow-map.ts) from flow.eps (B, N, C) instead of a categorical draw
   * (gen is then unused): deterministic (noise, sequence) pairs.
   */
  sample(labels: Int32Array, gen: Generator, flow?: FlowSampling): { z: Tensor; idx: Int32Array };
  dispose(): void;
}

/** The noise (B, N, C) of flow-map sampling and the Euler intervals per token. */
export interface FlowSampling { eps: Tensor; steps?: number }

/** Position pos of the flow noise as (B, C), checked against the batch. */
function flowNoise(flow: FlowSampling, B: number, N: number, C: number, pos: number): Tensor {
  const e = flow.eps;
  if (e.rank !== 3 || e.shape[0] !== B || e.shape[1] !== N || e.shape[2] !== C) {
    throw new RangeError(`dd2: teacher sample: flow noise ${e.describe()} must be (${B}, ${N}, ${C})`);
  }
  return contiguous(reshape(slice(e, 1, pos, pos + 1), [B, C]));
}

/** Disposes the tensors of a MixtureProbs. */
export function disposeProbs(p: MixtureProbs): void {
  p.dense?.dispose();
  p.idx?.dispose();
  p.val?.dispose();
}

/** Rows of a MixtureProbs repeated `times` (row blocks in order): for m noise draws per token. */
export function repeatProbs(p: MixtureProbs, times: number): MixtureProbs {
  if (times === 1) return p.dense ? { dense: p.dense } : { idx: p.idx, val: p.val };
  const rep = (t: Tensor): Tensor => concat(Array.from({ length: times }, () => t), 0);
  return p.dense ? { dense: rep(p.dense) } : { idx: rep(p.idx!), val: rep(p.val!) };
}

export interface TeacherSampling {
  /** guidance scale in LlamaGen's convention (uncond + cfg·(cond − uncond)); 1 = none */
  cfg: number;
  /** keep the k most likely codes (0 = all; 0 < k < V gives sparse probabilities of width k) */
  topK: number;
  /** nucleus mass (1 = off) */
  topP: number;
  temperature: number;
}

/**
 * Host rows of filtered logits (rows, V) (-Infinity = removed) -> normalised probabilities: dense (rows·V),
 * or, with 0 < topK < V, the topK largest entries of each row as idx/val (rows·topK), sorted by probability
 * descending, renormalised over those topK (ties of the k-th logit beyond k are dropped), padded with
 * probability 0 where fewer survive.
 */
export function probsFromLogits(logits: Float32Array, rows: number, V: number, topK: number):
  { dense?: Float32Array; idx?: Int32Array; val?: Float32Array } {
  const sparse = topK > 0 && topK < V;
  const dense = sparse ? null : new Float32Array(rows * V);
  const idx = sparse ? new Int32Array(rows * topK) : null, val = sparse ? new Float32Array(rows * topK) : null;
  const e = new Float64Array(V), order = new Int32Array(V);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (row[j] > max) max = row[j];
    if (!Number.isFinite(max)) throw new RangeError(`dd2: teacher probs: row ${r} has no finite logit (max ${max})`);
    let total = 0;
    for (let j = 0; j < V; j++) { e[j] = row[j] === -Infinity ? 0 : Math.exp(row[j] - max); total += e[j]; }
    if (dense) {
      for (let j = 0; j < V; j++) dense[r * V + j] = e[j] / total;
      continue;
    }
    for (let j = 0; j < V; j++) order[j] = j;
    order.sort((a, b) => (e[b] - e[a]) || (a - b));
    let kept = 0;
    for (let k = 0; k < topK; k++) kept += e[order[k]];
    for (let k = 0; k < topK; k++) {
      idx![r * topK + k] = order[k];
      val![r * topK + k] = e[order[k]] / kept;
    }
  }
  return dense ? { dense } : { idx: idx!, val: val! };
}

/** Host probabilities as tensors on `device`: dense (rows, V) or idx/val (rows, K). */
function probTensors(h: ReturnType<typeof probsFromLogits>, rows: number, V: number, topK: number,
  device: Tensor['device']): MixtureProbs {
  if (h.dense) return { dense: tensor(h.dense, [rows, V], { device }) };
  return { idx: tensor(h.idx!, [rows, topK], { device }), val: tensor(h.val!, [rows, topK], { device }) };
}

/**
 * The continuous-input AR teacher (METHOD §5.1, frozen) as a score teacher: one teacher-forced pass over
 * [class, z_0 .. z_{N-2}] (batch doubled with the null class when cfg != 1) gives the logits of every
 * position; CFG, temperature, top-k and top-p are applied exactly as lib/sample/ar-sample.ts does when
 * sampling, so probs() is the distribution sample() draws from.
 */
export class ARScoreTeacher implements ScoreTeacher {
  readonly codebook: Tensor;

  constructor(readonly model: ContinuousGPT, codebook: Tensor, readonly sampling: TeacherSampling) {
    const c = model.cfg.gpt;
    if (codebook.rank !== 2 || codebook.shape[0] !== c.vocabSize || codebook.shape[1] !== model.cfg.codeDim) {
      throw new RangeError(`dd2: ARScoreTeacher: codebook ${codebook.describe()} does not match the teacher ` +
        `(V ${c.vocabSize}, C ${model.cfg.codeDim})`);
    }
    if (sampling.cfg !== 1 && c.classDropoutProb === 0) {
      throw new Error('dd2: ARScoreTeacher: the teacher has no null class (classDropoutProb 0); use cfg 1');
    }
    if (!(Number.isInteger(sampling.topK) && sampling.topK >= 0)) {
      throw new RangeError(`dd2: ARScoreTeacher: topK must be an integer >= 0, got ${sampling.topK}`);
    }
    this.codebook = codebook;
    model.eval();
    for (const p of model.parameters()) p.requiresGrad = false;
  }

  get seqLen(): number { return this.model.seqLen; }
  get numClasses(): number { return this.model.cfg.gpt.numClasses; }
  get codeDim(): number { return this.model.cfg.codeDim; }
  get vocabSize(): number { return this.model.cfg.gpt.vocabSize; }
  /** the width of sparse probabilities, or 0 when they are dense */
  get sparseK(): number { const k = this.sampling.topK; return k > 0 && k < this.vocabSize ? k : 0; }

  /** Rows (labels doubled with the null class when guided) for labels (B). */
  private rowLabels(labels: Int32Array): Int32Array {
    const B = labels.length, K = this.numClasses;
    for (const l of labels) if (!(Number.isInteger(l) && l >= 0 && l < K)) throw new RangeError(`dd2: teacher: class ${l} outside [0, ${K})`);
    if (this.sampling.cfg === 1) return Int32Array.from(labels);
    const r = new Int32Array(2 * B);
    r.set(labels);
    r.fill(K, B);
    return r;
  }

  probs(labels: Tensor, z: Tensor): MixtureProbs {
    const N = this.seqLen, V = this.vocabSize, B = labels.size;
    if (z.rank !== 3 || z.shape[0] !== B || z.shape[1] !== N || z.shape[2] !== this.codeDim) {
      throw new RangeError(`dd2: teacher probs: z ${z.describe()} must be (${B}, ${N}, ${this.codeDim})`);
    }
    const host = noGrad(() => tidy(() => {
      const lab = this.rowLabels(labels.toInt32Array());
      const guided = lab.length !== B;
      const zin = N > 1 ? slice(z, 1, 0, N - 1) : null;                 // (B, N-1, C)
      const inputs = zin && guided ? concat([zin, zin], 0) : zin;
      const logits = this.model.forward(tensor(lab, [lab.length], { device: z.device }), inputs);   // (R, N, V)
      return processLogits(logits.toFloat32Array(), B * N, V, this.sampling);   // rows (b, i); cond block first
    }));
    return probTensors(probsFromLogits(host, B * N, V, this.sparseK), B * N, V, this.sparseK, z.device);
  }

  sample(labels: Int32Array, gen: Generator, flow?: FlowSampling): { z: Tensor; idx: Int32Array } {
    const B = labels.length, N = this.seqLen, V = this.vocabSize, C = this.codeDim, device = this.codebook.device;
    const lab = this.rowLabels(labels), R = lab.length;
    const idx = new Int32Array(B * N);
    const cache = this.model.createCache(R);
    try {
      noGrad(() => {
        const labT = keep(tensor(lab, [R], { device }));
        try {
          for (let pos = 0; pos < N; pos++) {
            const next = tidy(() => {
              let f: Tensor;
              if (pos === 0) f = this.model.features(labT, null, { cache });                // (R, 1, E)
              else {
                const prev = Int32Array.from({ length: R }, (_, r) => idx[(r % B) * N + pos - 1]);
                const x = reshape(embedding(this.codebook, tensor(prev, [R], { device })), [R, 1, C]);
                f = this.model.run(this.model.embedInputs(x), { start: pos, cache });
              }
              const raw = this.model.logits(f).toFloat32Array();                              // (R, 1, V)
              const w = tensor(probsFromLogits(processLogits(raw, B, V, this.sampling), B, V, 0).dense!, [B, V], { device });
              if (flow) return flowToCodes(flowNoise(flow, B, N, C, pos), { dense: w }, this.codebook, flow.steps);
              return gen.categorical(w).toInt32Array();
            });
            for (let b = 0; b < B; b++) idx[b * N + pos] = next[b];
          }
        } finally {
          labT.dispose();
        }
      });
    } finally {
      cache.dispose();
    }
    const z = noGrad(() => tidy(() => reshape(embedding(this.codebook, tensor(idx, [B * N], { device })), [B, N, C])));
    return { z, idx };
  }

  dispose(): void {
    this.model.dispose();
    this.codebook.dispose();
  }
}

export interface TabularSpec {
  /** V·C code coordinates, row-major (V, C) */
  codebook: Float32Array;
  V: number;
  C: number;
  N: number;
  numClasses: number;
  /**
   * tables[i] (i = 0..N-1): (numClasses·V^i, V) conditional probabilities of token i; row
   * class·V^i + Σ_{j<i} q_j·V^(i-1-j) (the prefix read as a base-V number, first token most significant).
   */
  tables: Float32Array[];
}

/**
 * An exact teacher over V codes and N positions given by conditional tables. probs() snaps each prefix
 * token to its nearest code (ties: the lower index) and looks its row up; sample() draws ancestrally.
 */
export class TabularTeacher implements ScoreTeacher {
  readonly codebook: Tensor;
  readonly seqLen: number;
  readonly numClasses: number;
  readonly codeDim: number;

  constructor(readonly spec: TabularSpec, device?: Tensor['device']) {
    const { V, C, N, numClasses, tables, codebook } = spec;
    if (codebook.length !== V * C) throw new RangeError(`dd2: TabularTeacher: codebook has ${codebook.length} values, expected V·C = ${V * C}`);
    if (tables.length !== N) throw new RangeError(`dd2: TabularTeacher: ${tables.length} tables for N = ${N} positions`);
    tables.forEach((tb, i) => {
      const rows = numClasses * V ** i;
      if (tb.length !== rows * V) throw new RangeError(`dd2: TabularTeacher: table ${i} has ${tb.length} values, expected ${rows}·${V}`);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < V; j++) { const p = tb[r * V + j]; if (!(p >= 0)) throw new RangeError(`dd2: TabularTeacher: table ${i} row ${r} has ${p}`); s += p; }
        if (Math.abs(s - 1) > 1e-5) throw new RangeError(`dd2: TabularTeacher: table ${i} row ${r} sums to ${s}, not 1`);
      }
    });
    this.codebook = keep(tensor(codebook, [V, C], { device }));
    this.seqLen = N;
    this.numClasses = numClasses;
    this.codeDim = C;
  }

  /** The nearest code to each of the rows of x (rows·C) -> indices. */
  snap(x: Float32Array): Int32Array {
    const { V, C, codebook } = this.spec, n = x.length / C, out = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      let best = 0, bestD = Infinity;
      for (let j = 0; j < V; j++) {
        let d = 0;
        for (let c = 0; c < C; c++) { const e = x[r * C + c] - codebook[j * C + c]; d += e * e; }
        if (d < bestD) { bestD = d; best = j; }
      }
      out[r] = best;
    }
    return out;
  }

  /** The row of table i for a class and the prefix codes q (at least i of them). */
  private row(i: number, label: number, q: ArrayLike<number>, at = 0): number {
    let r = label;
    for (let j = 0; j < i; j++) r = r * this.spec.V + q[at + j];
    return r;
  }

  /** p(q_i | class, q_<i) for one row's prefix as a host array (V). */
  conditional(i: number, label: number, q: ArrayLike<number>, at = 0): Float32Array {
    const V = this.spec.V, r = this.row(i, label, q, at);
    return this.spec.tables[i].subarray(r * V, (r + 1) * V);
  }

  probs(labels: Tensor, z: Tensor): MixtureProbs {
    const { V, C, N } = this.spec, B = labels.size;
    if (z.rank !== 3 || z.shape[0] !== B || z.shape[1] !== N || z.shape[2] !== C) {
      throw new RangeError(`dd2: TabularTeacher.probs: z ${z.describe()} must be (${B}, ${N}, ${C})`);
    }
    const lab = labels.toInt32Array(), q = this.snap(z.toFloat32Array());
    const out = new Float32Array(B * N * V);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < N; i++) out.set(this.conditional(i, lab[b], q, b * N), (b * N + i) * V);
    }
    return { dense: tensor(out, [B * N, V], { device: z.device }) };
  }

  sample(labels: Int32Array, gen: Generator, flow?: FlowSampling): { z: Tensor; idx: Int32Array } {
    const idx = flow ? this.flowCodes(labels, flow) : this.drawCodes(labels, gen);
    const { C } = this.spec, zh = new Float32Array(idx.length * C);
    for (let k = 0; k < idx.length; k++) zh.set(this.spec.codebook.subarray(idx[k] * C, (idx[k] + 1) * C), k * C);
    return { z: tensor(zh, [labels.length, this.seqLen, C], { device: this.codebook.device }), idx };
  }

  /** Ancestral categorical draws: indices (B·N). */
  private drawCodes(labels: Int32Array, gen: Generator): Int32Array {
    const { V, N } = this.spec, B = labels.length;
    const u = gen.uniform([B, N], 'cpu'), uh = u.toFloat32Array();
    u.dispose();
    const idx = new Int32Array(B * N);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < N; i++) {
        const p = this.conditional(i, labels[b], idx, b * N);
        let k = 0, cum = p[0];
        while (k < V - 1 && uh[b * N + i] >= cum) cum += p[++k];
        while (k > 0 && p[k] === 0) k--;                  // float round-off past the last non-zero entry
        idx[b * N + i] = k;
      }
    }
    return idx;
  }

  /** The flow map position by position from flow.eps: indices (B·N). */
  private flowCodes(labels: Int32Array, flow: FlowSampling): Int32Array {
    const { V, C, N } = this.spec, B = labels.length, device = this.codebook.device, idx = new Int32Array(B * N);
    for (let i = 0; i < N; i++) {
      const p = new Float32Array(B * V);
      for (let b = 0; b < B; b++) p.set(this.conditional(i, labels[b], idx, b * N), b * V);
      const q = noGrad(() => tidy(() => flowToCodes(flowNoise(flow, B, N, C, i), { dense: tensor(p, [B, V], { device }) }, this.codebook, flow.steps)));
      for (let b = 0; b < B; b++) idx[b * N + i] = q[b];
    }
    return idx;
  }

  /** The exact joint of one class over all V^N sequences (index = the sequence as a base-V number). */
  joint(label: number): Float64Array {
    const { V, N } = this.spec, out = new Float64Array(V ** N), q = new Int32Array(N);
    for (let s = 0; s < out.length; s++) {
      for (let i = N - 1, r = s; i >= 0; i--, r = Math.floor(r / V)) q[i] = r % V;
      let p = 1;
      for (let i = 0; i < N && p > 0; i++) p *= this.conditional(i, label, q)[q[i]];
      out[s] = p;
    }
    return out;
  }

  dispose(): void {
    this.codebook.dispose();
  }
}

/** Empirical frequencies of sequences of codes (rows of `idx`, S×N) over the V^N cells (base-V index). */
export function jointHistogram(idx: Int32Array, N: number, V: number): Float64Array {
  const S = idx.length / N, h = new Float64Array(V ** N);
  for (let s = 0; s < S; s++) {
    let k = 0;
    for (let i = 0; i < N; i++) k = k * V + idx[s * N + i];
    h[k] += 1 / S;
  }
  return h;
}

/** Total variation distance ½ Σ |p − q|. */
export function totalVariation(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new RangeError(`dd2: totalVariation: ${p.length} != ${q.length} cells`);
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i] - q[i]);
  return s / 2;
}

/** A host copy of x (B, N, C) snapped to the nearest rows of codebook (V, C) -> indices (B·N). */
export function nearestCodes(x: Tensor, codebook: Tensor): Int32Array {
  const C = codebook.shape[1], V = codebook.shape[0];
  const xs = x.toFloat32Array(), cb = codebook.toFloat32Array(), n = xs.length / C, out = new Int32Array(n);
  const norms = new Float32Array(V);
  for (let j = 0; j < V; j++) for (let c = 0; c < C; c++) norms[j] += cb[j * C + c] ** 2;
  for (let r = 0; r < n; r++) {
    let best = 0, bestD = Infinity;
    for (let j = 0; j < V; j++) {
      let d = norms[j];
      for (let c = 0; c < C; c++) d -= 2 * xs[r * C + c] * cb[j * C + c];
      if (d < bestD) { bestD = d; best = j; }
    }
    out[r] = best;
  }
  return out;
}
