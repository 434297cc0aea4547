// Inception Score (Salimans et al. 2016) as the ADM evaluator, StyleGAN and torch-fidelity compute it
// (DATA-EVAL.md §3.5): the N rows are cut into `splits` consecutive parts; per part
// IS_s = exp(mean_x KL(p(y|x) ‖ p(y))) with p(y) the part's mean row; the result is the mean and the
// population standard deviation (np.std) over parts. probs: N x K row-major, each row a softmax.
// Parts are rows [floor(s N / splits), floor((s+1) N / splits)), which is N/splits rows each when splits
// divides N (the usual 50k / 10); no row is dropped otherwise. 0 log 0 is taken as 0. Float64 sums.

export interface InceptionScore { mean: number; std: number; splits: number[] }

export function inceptionScore(probs: Float32Array | Float64Array, n: number, k: number, splits = 10): InceptionScore {
  if (!(probs instanceof Float32Array || probs instanceof Float64Array)) {
    throw new TypeError(`dd2: inceptionScore: probs must be a Float32Array or Float64Array (N x K), got ${(probs as object)?.constructor?.name}`);
  }
  if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(k) || k < 1) throw new RangeError(`dd2: inceptionScore: N and K must be integers >= 1, got N = ${n}, K = ${k}`);
  if (probs.length !== n * k) throw new RangeError(`dd2: inceptionScore: N x K = ${n} x ${k} needs ${n * k} values, got ${probs.length}`);
  if (!Number.isSafeInteger(splits) || splits < 1 || splits > n) throw new RangeError(`dd2: inceptionScore: splits must be an integer in [1, N = ${n}], got ${splits}`);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < k; j++) {
      const p = probs[r * k + j];
      if (!(p >= 0 && p <= 1)) throw new RangeError(`dd2: inceptionScore: probs[${r}, ${j}] = ${p} is not a probability (rows must be softmax outputs)`);
      s += p;
    }
    if (Math.abs(s - 1) > 1e-3) throw new RangeError(`dd2: inceptionScore: row ${r} sums to ${s}, expected 1 (rows must be softmax outputs, not logits)`);
  }
  const scores: number[] = [];
  const py = new Float64Array(k);
  for (let s = 0; s < splits; s++) {
    const r0 = Math.floor((s * n) / splits), r1 = Math.floor(((s + 1) * n) / splits), m = r1 - r0;
    py.fill(0);
    for (let r = r0; r < r1; r++) for (let j = 0; j < k; j++) py[j] += probs[r * k + j];
    for (let j = 0; j < k; j++) py[j] /= m;
    let kl = 0;
    for (let r = r0; r < r1; r++) {
      for (let j = 0; j < k; j++) {
        const p = probs[r * k + j];
        if (p > 0) kl += p * (Math.log(p) - Math.log(py[j]));
      }
    }
    scores.push(Math.exp(kl / m));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / splits;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) * (b - mean), 0) / splits);
  return { mean, std, splits: scores };
}
