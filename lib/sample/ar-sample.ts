// Token-by-token sampling from the GPT teacher, following LlamaGen autoregressive/models/generate.py:
// classifier-free guidance on a doubled batch (conditional rows, then the same rows with the null class;
// logits = uncond + cfg·(cond − uncond), both halves fed the same sampled token), then temperature,
// top-k and top-p (nucleus) filtering, then one seeded categorical draw per row (Generator.categorical,
// so a seed reproduces the tokens bit for bit). Decoding uses per-layer KV caches; `cached: false`
// recomputes the whole prefix at every step (the reference the cache is tested against).
// Letters: B images, N tokens per image, V vocabulary.
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { noGrad, tidy } from '../tensor/engine.js';
import type { Generator } from '../tensor/random.js';
import { slice } from '../tensor/ops/shape.js';
import type { GPT, KVCache } from '../models/gpt.js';

export interface SampleOptions {
  /** guidance scale (default 1 = none); any other value doubles the batch with the null class */
  cfg?: number;
  /** logits are divided by max(temperature, 1e-5) (default 1) */
  temperature?: number;
  /** keep the k largest logits (ties kept); 0 = off (default) */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p; 1 = off (default) */
  topP?: number;
  /** KV-cached decoding (default true); false recomputes the prefix at every step */
  cached?: boolean;
  /** called after each token position with (position, N) */
  onStep?: (pos: number, total: number) => void;
  /** called with the raw logits (R, V) of each position, R = 2B with guidance (cond rows, then null rows) */
  onLogits?: (pos: number, raw: Float32Array) => void;
}

/**
 * In-place top-k then top-p filtering of `rows` rows of V logits (LlamaGen's top_k_top_p_filtering):
 * removed entries become -Infinity. top-k keeps every logit >= the k-th largest. top-p sorts the
 * survivors by (logit descending, index ascending), and removes a token when the probability mass of
 * the tokens before it already exceeds p (so the first token is always kept).
 */
export function filterLogits(logits: Float32Array, rows: number, V: number, topK = 0, topP = 1): void {
  if (!(Number.isInteger(topK) && topK >= 0)) throw new RangeError(`dd2: sample: top-k must be an integer >= 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`dd2: sample: top-p must be in (0, 1], got ${topP}`);
  if (logits.length !== rows * V) throw new RangeError(`dd2: filterLogits: ${logits.length} values are not ${rows} x ${V}`);
  const order = new Int32Array(V);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    if (topK > 0 && topK < V) {
      const sorted = Float32Array.from(row).sort();          // ascending; -Infinity first, NaN last
      const kth = sorted[V - topK];
      for (let i = 0; i < V; i++) if (row[i] < kth) row[i] = -Infinity;
    }
    if (topP < 1) {
      for (let i = 0; i < V; i++) order[i] = i;
      order.sort((a, b) => (row[b] - row[a]) || (a - b));
      const max = row[order[0]];
      let total = 0;
      for (let i = 0; i < V; i++) total += Math.exp(row[i] - max);
      let cum = 0;
      for (let j = 0; j < V; j++) {
        const i = order[j];
        if (j > 0 && cum > topP) row[i] = -Infinity;
        cum += Math.exp(row[i] - max) / total;
      }
    }
  }
}

/** Row-wise exp(l − max l) (unnormalised probabilities, exactly 0 for -Infinity) as float32. */
export function softmaxWeights(logits: Float32Array, rows: number, V: number): Float32Array {
  const w = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, logits[r * V + i]);
    if (!Number.isFinite(max)) throw new RangeError(`dd2: sample: row ${r} has no finite logit (max ${max})`);
    for (let i = 0; i < V; i++) w[r * V + i] = Math.exp(logits[r * V + i] - max);
  }
  return w;
}

/** Guidance, temperature and filtering of the last-position logits (rows = B or 2B) -> (B, V). */
export function processLogits(raw: Float32Array, B: number, V: number, o: SampleOptions): Float32Array {
  const cfg = o.cfg ?? 1, temp = Math.max(o.temperature ?? 1, 1e-5);
  const out = new Float32Array(B * V);
  const guided = raw.length === 2 * B * V;
  for (let i = 0; i < B * V; i++) {
    const l = guided ? raw[B * V + i] + cfg * (raw[i] - raw[B * V + i]) : raw[i];
    out[i] = l / temp;
  }
  filterLogits(out, B, V, o.topK ?? 0, o.topP ?? 1);
  return out;
}

/** The last position's logits of a teacher-forced pass over [class, tokens[:, :pos]] -> host (R, V). */
function uncachedLogits(model: GPT, labels: Tensor, tokens: Int32Array, R: number, pos: number): Float32Array {
  const N = model.seqLen;
  const prefix = new Int32Array(R * pos);
  for (let r = 0; r < R; r++) prefix.set(tokens.subarray(r * N, r * N + pos), r * pos);
  const logits = model.forward(labels, pos > 0 ? tensor(prefix, [R, pos], { device: model.device }) : null);   // (R, 1+pos, V)
  return slice(logits, 1, pos, pos + 1).toFloat32Array();
}

/** One cached step: the class token at position 0, else token pos-1 at position pos -> host (R, V). */
function cachedLogits(model: GPT, cache: KVCache, labels: Tensor, tokens: Int32Array, R: number, pos: number): Float32Array {
  const N = model.seqLen;
  let h: Tensor;
  if (pos === 0) h = model.embed(labels, null);
  else {
    const last = Int32Array.from({ length: R }, (_, r) => tokens[r * N + pos - 1]);
    h = model.embedTokens(tensor(last, [R, 1], { device: model.device }));
  }
  return model.output.forward(model.features(h, { start: pos, cache })).toFloat32Array();   // (R, 1, V)
}

/**
 * Samples N = h·w tokens for each label: labels (B) -> tokens (B·N), row-major (B, N). The model is
 * put in eval mode for the call. Each step draws exactly B categorical values from `gen`.
 */
export function sampleTokens(model: GPT, labels: Int32Array, gen: Generator, o: SampleOptions = {}): Int32Array {
  const B = labels.length, N = model.seqLen, V = model.cfg.vocabSize, K = model.cfg.numClasses;
  const cfg = o.cfg ?? 1;
  if (!Number.isFinite(cfg)) throw new RangeError(`dd2: sample: cfg must be finite, got ${cfg}`);
  for (const l of labels) {
    if (!(Number.isInteger(l) && l >= 0 && l < K)) throw new RangeError(`dd2: sample: class ${l} outside [0, ${K})`);
  }
  const guided = cfg !== 1;
  if (guided && model.cfg.classDropoutProb === 0) {
    throw new Error('dd2: sample: the model was built without a null class (classDropoutProb 0); use cfg 1');
  }
  const R = guided ? 2 * B : B;
  const rowLabels = new Int32Array(R);
  rowLabels.set(labels);
  if (guided) rowLabels.fill(K, B);
  const tokens = new Int32Array(R * N);
  const wasTraining = model.training;
  model.eval();
  const cached = o.cached ?? true;
  const cache = cached ? model.createCache(R) : null;
  const lab = tensor(rowLabels, [R], { device: model.device });
  try {
    noGrad(() => {
      for (let pos = 0; pos < N; pos++) {
        const next = tidy(() => {
          const raw = cache ? cachedLogits(model, cache, lab, tokens, R, pos) : uncachedLogits(model, lab, tokens, R, pos);
          o.onLogits?.(pos, raw);
          const w = softmaxWeights(processLogits(raw, B, V, o), B, V);
          return gen.categorical(tensor(w, [B, V], { device: model.device })).toInt32Array();
        });
        for (let r = 0; r < R; r++) tokens[r * N + pos] = next[r % B];
        o.onStep?.(pos, N);
      }
    });
  } finally {
    lab.dispose();
    cache?.dispose();
    model.train(wasTraining);
  }
  return tokens.slice(0, B * N);
}
