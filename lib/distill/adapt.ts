// Stage 0 of DD2 for LlamaGen-style teachers (METHOD §5.1): continuous-input adaptation. The GPT's token
// embedding table is replaced by an input MLP tok_mlp: R^C -> R^E (lib/models/continuous-gpt.ts); phase
// 'fit' regresses tok_mlp(c_j) onto tok_embeddings[j] over the V codes (MSE, Adam, full batch), phase
// 'tune' fine-tunes the whole model with next-token cross-entropy on the teacher's token cache, the inputs
// being the codebook vectors of the tokens. The adapted model is the teacher of the later stages. Both
// phases checkpoint in the stage's run folder and resume exactly. NLL per token (nats) is measured on
// the test cache for the original GPT, after the fit and after the fine-tune.
// Letters: B batch, N tokens per image, C code dim, E width, V codebook size.
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/engine.js';
import { Generator, type GeneratorState } from '../tensor/random.js';
import { backward } from '../autograd/tape.js';
import { mean } from '../tensor/ops/reduce.js';
import { square, sub } from '../tensor/ops/elementwise.js';
import { reshape, slice } from '../tensor/ops/shape.js';
import { embedding } from '../tensor/ops/index.js';
import { crossEntropy } from '../tensor/ops/softmax.js';
import { AdamW, clipGradNorm } from '../nn/optim.js';
import { restoreTrainingState, type RunDir } from '../io/checkpoint.js';
import { Progress } from '../io/progress.js';
import { Batcher, type BatcherState } from '../data/dataset.js';
import type { GPT } from '../models/gpt.js';
import { ContinuousGPT } from '../models/continuous-gpt.js';
import { batchOf, evaluateNLL, evaluateNLLWith, type TokenCache } from '../train/ar.js';
import { warmupLr } from './schedule.js';

export interface AdaptOptions {
  /** hidden width of tok_mlp */
  inputHidden: number;
  /** full-batch Adam steps of the embedding fit, and their learning rate */
  fitSteps: number;
  fitLr: number;
  /** fine-tuning steps of the whole model on the token cache (0: fit only) */
  tuneSteps: number;
  batchSize: number;
  lr: number;
  /** linear warm-up of the fine-tuning LR from 0 */
  warmup: number;
  betas: [number, number];
  weightDecay: number;
  clip: number;
  /** test images for the NLL figures (the first ones of the test cache) */
  evalLimit: number;
  evalBatch: number;
  seed: number;
  ckptEvery: number;
  logEvery: number;
}

export const defaultAdaptOptions: AdaptOptions = {
  inputHidden: 256, fitSteps: 1500, fitLr: 3e-3, tuneSteps: 300, batchSize: 64, lr: 3e-4, warmup: 30, betas: [0.9, 0.95],
  weightDecay: 0, clip: 1.0, evalLimit: 1000, evalBatch: 250, seed: 0, ckptEvery: 100, logEvery: 25,
};

export interface StageHooks {
  json?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** stop after this many steps of the stage (tests of --resume); the stage is checkpointed there */
  stopAfter?: number;
}

export interface AdaptResult {
  /** false when hooks.stopAfter ended the stage early */
  finished: boolean;
  model: ContinuousGPT;
  /** NLL per token (nats) on the eval images: the original GPT, after the fit, after the fine-tune */
  nllGPT: number; nllFit: number; nllTuned: number;
  fitLoss: number; tuneLoss: number; seconds: number;
  /** seconds per fine-tuning step (mean over this run's steps) */
  secondsPerTuneStep: number;
}

/** Rows [0, limit) of a cache. */
function head(c: TokenCache, limit: number): TokenCache {
  if (c.n <= limit) return c;
  return { ...c, n: limit, tokens: c.tokens.slice(0, limit * c.seqLen), labels: c.labels.slice(0, limit) };
}

/** Tokens (B, N) and labels (B) of rows idx. */
/** Teacher-forced logits (B, N, V) of the continuous model on token rows: inputs = codebook[tokens[:, :N-1]]. */
export function continuousLogits(model: ContinuousGPT, codebook: Tensor, labels: Tensor, tokens: Tensor, gen?: Generator): Tensor {
  const [B, N] = tokens.shape, C = codebook.shape[1];
  const inputs = N > 1 ? reshape(embedding(codebook, slice(tokens, 1, 0, N - 1)), [B, N - 1, C]) : null;
  return model.forward(labels, inputs, gen);
}

/** Mean NLL per token (nats) of the continuous model on a cache (eval mode, batches of `batch`). */
export function continuousNLL(model: ContinuousGPT, codebook: Tensor, c: TokenCache, batch = 250): number {
  return evaluateNLLWith(model, c, (labels, tokens) => continuousLogits(model, codebook, labels, tokens), batch);
}

interface Saved { rng?: GeneratorState; batcher?: BatcherState; extra?: { loss?: number; nllGPT?: number; nllFit?: number } }

/**
 * Runs (or resumes) stage 0 in `run` (the stage's own folder): returns the adapted model (train mode off,
 * parameters still trainable) and the NLL figures. The GPT and codebook are not modified or disposed.
 */
export function runAdapt(run: RunDir, gpt: GPT, codebook: Tensor, train: TokenCache, test: TokenCache, o: AdaptOptions,
  hooks: StageHooks = {}): AdaptResult {
  const t0 = performance.now();
  const V = gpt.cfg.vocabSize, C = codebook.shape[1];
  if (codebook.rank !== 2 || codebook.shape[0] !== V) {
    throw new RangeError(`dd2: adapt: codebook ${codebook.describe()} does not have the teacher's ${V} codes`);
  }
  if (train.codebookSize !== V || train.seqLen !== gpt.seqLen || train.numClasses !== gpt.cfg.numClasses) {
    throw new Error(`dd2: adapt: token cache ${train.path} (V ${train.codebookSize}, ${train.seqLen} tokens, ` +
      `${train.numClasses} classes) does not match the teacher (V ${V}, ${gpt.seqLen}, ${gpt.cfg.numClasses})`);
  }
  const evalSet = head(test, o.evalLimit);
  let rng = new Generator(o.seed);
  const model = ContinuousGPT.fromGPT(gpt, C, o.inputHidden, rng);
  const stopAt = hooks.stopAfter ?? Infinity;
  let done = 0;                                              // steps of this stage run in this call
  let nllGPT = NaN, nllFit = NaN, fitLoss = NaN, tuneLoss = NaN, tuneSeconds = 0, tuneCount = 0;
  try {
    // ---- phase 'fit': tok_mlp(c_j) ≈ tok_embeddings[j]
    const tuneState = run.loadTrainingState('tune');
    const fitState = tuneState ? null : run.loadTrainingState('fit');
    if (tuneState) {
      const s = tuneState.extra as Saved['extra'];
      nllGPT = s?.nllGPT ?? NaN;
      nllFit = s?.nllFit ?? NaN;
    } else {
      const fitOpt = new AdamW(model.tok_mlp.parameters(), { lr: o.fitLr, betas: [0.9, 0.999], weightDecay: 0 });
      let step = 0;
      try {
        if (fitState) {
          restoreTrainingState(fitState, { module: model, optimizer: fitOpt });
          step = fitState.step;
          const s = fitState.extra as Saved['extra'];
          nllGPT = s?.nllGPT ?? NaN;
          nllFit = s?.nllFit ?? NaN;
          fitLoss = s?.loss ?? NaN;
        } else {
          nllGPT = evaluateNLL(gpt, evalSet, o.evalBatch);
          run.log({ event: 'start', phase: 'fit', nllGPT, evalImages: evalSet.n, params: model.numParameters() });
        }
        const first = step;
        const target = gpt.tok_embeddings.weight;                                   // (V, E), read only
        const progress = new Progress(o.fitSteps, 'adapt fit', { json: hooks.json, stream: hooks.progressStream });
        progress.tick(step);
        const lastFit = Math.min(o.fitSteps, step + Math.max(0, stopAt - done));
        while (step < lastFit) {
          fitLoss = tidy(() => {
            const l = mean(square(sub(model.tok_mlp.forward(codebook), target)));
            backward(l);
            return l.item();
          });
          fitOpt.step();
          fitOpt.zeroGrad();
          step++; done++;
          progress.tick(1, { mse: fitLoss });
          if (step % o.logEvery === 0 || step === o.fitSteps) run.log({ phase: 'fit', step, mse: fitLoss });
        }
        progress.done({ mse: fitLoss });
        if (step === o.fitSteps && Number.isNaN(nllFit)) {
          nllFit = continuousNLL(model, codebook, evalSet, o.evalBatch);
          run.log({ phase: 'fit', event: 'done', step, mse: fitLoss, nllFit });
        }
        if (step > first || !fitState) {
          run.saveTrainingState('fit', { module: model, optimizer: fitOpt, step, meta: { kind: 'continuous-gpt', config: model.cfg, step },
            extra: { loss: fitLoss, nllGPT, nllFit } });
        }
      } finally {
        fitOpt.dispose();
      }
      if (step < o.fitSteps) {
        return { finished: false, model, nllGPT, nllFit, nllTuned: NaN, fitLoss, tuneLoss, seconds: (performance.now() - t0) / 1000,
          secondsPerTuneStep: NaN };
      }
    }

    // ---- phase 'tune': next-token cross-entropy of the whole model on the token cache
    const opt = new AdamW(model.parameters(), { lr: o.lr, betas: o.betas, weightDecay: o.weightDecay });
    const lr = warmupLr(0, o.lr, Math.min(o.warmup, o.tuneSteps));
    let batcher = new Batcher(train.n, o.batchSize, { seed: o.seed, shuffle: true, dropLast: train.n >= o.batchSize });
    let step = 0;
    try {
      if (tuneState) {
        restoreTrainingState(tuneState, { module: model, optimizer: opt });
        const s = tuneState as unknown as Saved;
        step = tuneState.step;
        if (s.rng) rng = Generator.fromState(s.rng);
        if (s.batcher) batcher = Batcher.fromState(train.n, o.batchSize, s.batcher, { shuffle: true, dropLast: batcher.dropLast });
        tuneLoss = s.extra?.loss ?? NaN;
        run.log({ event: 'resume', phase: 'tune', step });
      }
      const save = (): void => {
        run.saveTrainingState('tune', { module: model, optimizer: opt, step, rng: rng.state(), batcher: batcher.state(),
          meta: { kind: 'continuous-gpt', config: model.cfg, step }, extra: { loss: tuneLoss, nllGPT, nllFit } });
      };
      const progress = new Progress(o.tuneSteps, 'adapt tune', { json: hooks.json, stream: hooks.progressStream });
      progress.tick(step);
      model.train();
      const lastTune = Math.min(o.tuneSteps, step + Math.max(0, stopAt - done));
      while (step < lastTune) {
        const ts = performance.now();
        opt.setLr(lr(step));
        const { toks, labs } = batchOf(train, batcher.next());
        tuneLoss = tidy(() => {
          const device = model.device, t = tensor(toks, [labs.length, train.seqLen], { device });
          const l = crossEntropy(continuousLogits(model, codebook, tensor(labs, [labs.length], { device }), t, rng), t);
          backward(l);
          return l.item();
        });
        const gradNorm = clipGradNorm(model.parameters(), o.clip);
        opt.step();
        opt.zeroGrad();
        step++; done++;
        tuneSeconds += (performance.now() - ts) / 1000;
        tuneCount++;
        progress.tick(1, { loss: tuneLoss });
        if (step % o.logEvery === 0 || step === lastTune) run.log({ phase: 'tune', step, loss: tuneLoss, gradNorm, lr: lr(step - 1) });
        if (step % o.ckptEvery === 0 || step === lastTune) save();
      }
      progress.done({ loss: tuneLoss });
      model.eval();
      if (step < o.tuneSteps) {
        return { finished: false, model, nllGPT, nllFit, nllTuned: NaN, fitLoss, tuneLoss, seconds: (performance.now() - t0) / 1000,
          secondsPerTuneStep: tuneCount ? tuneSeconds / tuneCount : NaN };
      }
    } finally {
      opt.dispose();
    }
    const nllTuned = o.tuneSteps > 0 ? continuousNLL(model, codebook, evalSet, o.evalBatch) : nllFit;
    run.log({ event: 'done', nllGPT, nllFit, nllTuned, evalImages: evalSet.n });
    return { finished: true, model, nllGPT, nllFit, nllTuned, fitLoss, tuneLoss, seconds: (performance.now() - t0) / 1000,
      secondsPerTuneStep: tuneCount ? tuneSeconds / tuneCount : NaN };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
