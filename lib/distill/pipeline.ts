// The `dd2 distill` run folder (METHOD §6.1): stage 0 (adapt: continuous-input teacher), stage 1 (GTS: the
// AR-diffusion model ψ0), the regression warm start of the generator (reg: our choice, lib/distill/regress.ts)
// and stage 2 (CSD: the one-step generator), each in its own subfolder (adapt/, gts/, reg/, csd/) with its own
// run.json, log.jsonl and checkpoints, resumable, and skipped when its final file exists.
// Final files at the top of the run folder:
//   teacher-continuous.safetensors  the adapted teacher (stage 0; the teacher of stages 1 and 2)
//   ar-diffusion.safetensors        ψ0 (stage 1)
//   marginals.safetensors           per-position token marginals of stage 1's teacher-sample pool
//   warm-start.safetensors          the generator after the regression warm start (absent with --reg-steps 0)
//   generator.safetensors           the EMA generator (stage 2), guidance.safetensors the guidance network
// plus run.json (the options) and log.jsonl (one record per stage event).
import { existsSync } from 'node:fs';
import type { Tensor } from '../tensor/tensor.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { Generator } from '../tensor/random.js';
import { contiguous } from '../tensor/ops/shape.js';
import { RunDir } from '../io/checkpoint.js';
import { loadGPTWithMeta } from '../models/gpt.js';
import { loadVQ } from '../models/vq.js';
import { loadContinuousGPT, saveContinuousGPT } from '../models/continuous-gpt.js';
import { ARDiffusion, loadARDiffusion, saveARDiffusion } from '../models/ar-diffusion.js';
import { estimateMarginals, saveMarginals } from '../sample/dd2-sample.js';
import { defaultTestTokens, readTokenCache, sliceCache, type TokenCache } from '../train/ar.js';
import { defaultAdaptOptions, runAdapt, type AdaptOptions, type StageHooks } from './adapt.js';
import { defaultGtsOptions, readPool, runGTS, type GtsOptions, type SamplePool } from './gts.js';
import { defaultCsdOptions, runCSD, type CsdOptions } from './csd.js';
import { defaultRegressOptions, runRegress, type RegressOptions } from './regress.js';
import { ARScoreTeacher, type TeacherSampling } from './teacher.js';

export type Stage = 'all' | 'adapt' | 'gts' | 'reg' | 'csd';
export const STAGES: readonly Stage[] = ['all', 'adapt', 'gts', 'reg', 'csd'];
type OneStage = Exclude<Stage, 'all'>;

export interface HeadOptions { width: number; depth: number; freqDim: number }

export interface DistillOptions {
  /** the AR teacher (a 'gpt' checkpoint from dd2 train ar) */
  teacher: string;
  /** its VQ tokenizer (default: the one recorded in the teacher checkpoint) */
  tokenizer?: string;
  /** token caches for stage 0 (default: the teacher run's --tokens, recorded in its checkpoint) */
  tokens?: string;
  testTokens?: string;
  stage: Stage;
  /** the teacher's sampling settings: probability vectors of the scores and the stage-1 samples */
  sampling: TeacherSampling;
  /** the MLP head of ψ0 (and so of the generator and the guidance network) */
  head: HeadOptions;
  adapt: AdaptOptions;
  gts: GtsOptions;
  reg: RegressOptions;
  csd: CsdOptions;
}

export const defaultHead: HeadOptions = { width: 128, depth: 2, freqDim: 128 };
export const defaultSampling: TeacherSampling = { cfg: 2.0, topK: 0, topP: 1.0, temperature: 1.0 };

export function defaultDistillOptions(teacher: string): DistillOptions {
  return { teacher, stage: 'all', sampling: { ...defaultSampling }, head: { ...defaultHead }, adapt: { ...defaultAdaptOptions },
    gts: { ...defaultGtsOptions }, reg: { ...defaultRegressOptions }, csd: { ...defaultCsdOptions } };
}

export interface DistillResult {
  finished: boolean;
  runDir: string;
  /** stages run in this call and stages skipped because their final file existed */
  ran: string[];
  skipped: string[];
  files: Record<string, string>;
  /** per stage: the figures it reported (NLLs, losses, seconds per step) */
  adapt?: Record<string, number>;
  gts?: Record<string, number>;
  reg?: Record<string, number>;
  csd?: Record<string, number>;
}

/** A stage's folder: opened when it exists (resume), created otherwise. */
function stageDir(run: RunDir, name: string, config: unknown): RunDir {
  const dir = run.path(name);
  return existsSync(`${dir}/run.json`) ? RunDir.open(dir) : RunDir.create(dir, config);
}

/** The file names of a finished run. */
export function finalFiles(run: RunDir): Record<'teacher' | 'arDiffusion' | 'marginals' | 'warmStart' | 'generator' | 'guidance', string> {
  return {
    teacher: run.path('teacher-continuous.safetensors'), arDiffusion: run.path('ar-diffusion.safetensors'),
    marginals: run.path('marginals.safetensors'), warmStart: run.path('warm-start.safetensors'),
    generator: run.path('generator.safetensors'), guidance: run.path('guidance.safetensors'),
  };
}

/** Whether a stage's folder holds checkpoints of an unfinished run (then --resume is needed to go on). */
export function stageInProgress(run: RunDir, stage: OneStage): boolean {
  const names = { adapt: ['fit', 'tune'], gts: ['gts'], reg: ['regress'], csd: ['csd'] }[stage];
  return names.some((n) => existsSync(run.path(stage, `${n}-latest.json`)));
}

/** The teacher's token caches for stage 0: the given paths, else the ones recorded in the teacher checkpoint. */
function tokenCaches(o: DistillOptions, recorded: string | undefined): { train: TokenCache; test: TokenCache } {
  const path = o.tokens ?? recorded;
  if (!path) throw new Error(`dd2: distill: no token cache for stage 0: pass --tokens (the teacher ${o.teacher} records none)`);
  if (!existsSync(path)) throw new Error(`dd2: distill: token cache ${path} does not exist (--tokens)`);
  const all = readTokenCache(path);
  const testPath = o.testTokens ?? defaultTestTokens(path);
  if (testPath && existsSync(testPath)) return { train: all, test: readTokenCache(testPath) };
  const cut = all.n - Math.max(1, Math.floor(all.n / 10));
  return { train: sliceCache(all, 0, cut, 'train'), test: sliceCache(all, cut, all.n, 'held-out') };
}

export interface DistillHooks extends StageHooks {
  /** the stage that hooks.stopAfter applies to (tests of --resume) */
  stopStage?: OneStage;
}

/**
 * Runs the requested stages in `run` (stages before the requested one must have their final files unless
 * the stage is 'all'). Stages whose final file exists are skipped; an unfinished stage continues from its
 * checkpoint. hooks.stopAfter stops stage hooks.stopStage after that many steps of this call.
 */
export function runDistill(run: RunDir, o: DistillOptions, hooks: DistillHooks = {}): DistillResult {
  const files = finalFiles(run);
  const res: DistillResult = { finished: false, runDir: run.dir, ran: [], skipped: [], files: {} };
  const want = (s: OneStage): boolean => o.stage === 'all' || o.stage === s;
  const { model: gpt0, meta: gptMeta } = loadGPTWithMeta(o.teacher);
  const tokenizer = o.tokenizer ?? gptMeta.tokenizer;
  gpt0.dispose();
  if (!tokenizer) throw new Error(`dd2: distill: the teacher ${o.teacher} records no tokenizer; pass --tokenizer`);
  if (!existsSync(tokenizer)) throw new Error(`dd2: distill: tokenizer ${tokenizer} does not exist (--tokenizer)`);
  const codebook: Tensor = noGrad(() => {
    const vq = loadVQ(tokenizer);
    try { return keep(tidy(() => contiguous(vq.codes()))); } finally { vq.dispose(); }
  });
  const teacherStep = (gptMeta as { step?: number }).step ?? 0;
  const recordedTokens = ((gptMeta.options ?? {}) as { tokens?: string }).tokens;
  const stageHooks = (s: OneStage): StageHooks => ({ ...hooks, stopAfter: s === hooks.stopStage ? hooks.stopAfter : undefined });
  const stopped = (finished: boolean): boolean => !finished;
  try {
    // ---- stage 0: continuous-input adaptation
    if (want('adapt')) {
      if (existsSync(files.teacher)) res.skipped.push('adapt');
      else {
        const { model: gpt } = loadGPTWithMeta(o.teacher);
        const { train, test } = tokenCaches(o, recordedTokens);
        const dir = stageDir(run, 'adapt', { stage: 'adapt', teacher: o.teacher, tokenizer, tokens: train.path, options: o.adapt });
        run.log({ event: 'stage start', stage: 'adapt' });
        let r;
        try { r = runAdapt(dir, gpt, codebook, train, test, o.adapt, stageHooks('adapt')); } finally { gpt.dispose(); }
        try {
          res.ran.push('adapt');
          res.adapt = { nllGPT: r.nllGPT, nllFit: r.nllFit, nllTuned: r.nllTuned, fitMse: r.fitLoss, tuneLoss: r.tuneLoss,
            secondsPerTuneStep: r.secondsPerTuneStep, seconds: r.seconds };
          if (stopped(r.finished)) return res;
          saveContinuousGPT(files.teacher, r.model, { step: teacherStep, role: 'teacher', tokenizer });
          run.log({ event: 'stage done', stage: 'adapt', ...res.adapt });
        } finally {
          r.model.dispose();
        }
      }
    }
    const needTeacher = want('gts') || want('reg') || want('csd');
    if (!needTeacher) { res.finished = true; return res; }
    if (!existsSync(files.teacher)) {
      throw new Error(`dd2: distill: ${files.teacher} is missing: run --stage adapt (or all) in this folder first`);
    }
    const teacher = new ARScoreTeacher(loadContinuousGPT(files.teacher).model, codebook, o.sampling);
    try {
      // ---- stage 1: AR-diffusion tuning with the GTS loss
      if (want('gts')) {
        if (existsSync(files.arDiffusion) && existsSync(files.marginals)) res.skipped.push('gts');
        else {
          const dir = stageDir(run, 'gts', { stage: 'gts', sampling: o.sampling, head: o.head, options: o.gts });
          const psi = ARDiffusion.fromTeacher(teacher.model, o.head, new Generator(o.gts.seed + 7));
          run.log({ event: 'stage start', stage: 'gts' });
          try {
            const r = runGTS(dir, teacher, psi, o.gts, stageHooks('gts'));
            res.ran.push('gts');
            res.gts = { loss: r.loss, secondsPerHeadStep: r.secondsPerHeadStep, secondsPerFullStep: r.secondsPerFullStep,
              poolSeconds: r.poolSeconds, pool: r.pool.S, seconds: r.seconds };
            if (stopped(r.finished)) return res;
            saveMarginals(files.marginals, estimateMarginals(r.pool.idx, r.pool.N, teacher.vocabSize), r.pool.N, teacher.vocabSize);
            saveARDiffusion(files.arDiffusion, psi, { step: r.step, role: 'ar-diffusion', tokenizer });
            run.log({ event: 'stage done', stage: 'gts', ...res.gts });
          } finally {
            psi.dispose();
          }
        }
      }
      // stage 1's outputs for the later stages: ψ0 must exist; its flow-map pool (the regression data) is read once
      const requirePsi0 = (): void => {
        if (!existsSync(files.arDiffusion)) {
          throw new Error(`dd2: distill: ${files.arDiffusion} is missing: run --stage gts (or all) in this folder first`);
        }
      };
      const warm = (o.reg?.steps ?? 0) > 0;
      let pool: SamplePool | undefined;
      const stagePool = (why: string): SamplePool => {
        const path = run.path('gts', 'pool.safetensors');
        if (!existsSync(path)) throw new Error(`dd2: distill: ${why} needs stage 1's pool ${path}: run --stage gts (or all) in this folder first`);
        pool ??= readPool(path);
        if (!pool.eps) {
          throw new Error(`dd2: distill: ${path} was drawn without the flow map (no noise stored), so ${why} cannot use it; ` +
            'delete gts/ and ar-diffusion.safetensors and rerun stage 1 with --pool-flow-steps > 0, or pass --reg-steps 0 --csd-reg 0');
        }
        return pool;
      };
      // ---- regression warm start of the generator (our choice)
      if (want('reg') && warm) {
        if (existsSync(files.warmStart)) res.skipped.push('reg');
        else {
          requirePsi0();
          const p = stagePool('the regression warm start');
          const dir = stageDir(run, 'reg', { stage: 'reg', options: o.reg });
          const psi0 = loadARDiffusion(files.arDiffusion).model;
          run.log({ event: 'stage start', stage: 'reg' });
          try {
            const r = runRegress(dir, teacher, psi0, p, o.reg, stageHooks('reg'));
            try {
              res.ran.push('reg');
              res.reg = { loss: r.loss, secondsPerStep: r.secondsPerStep, seconds: r.seconds };
              if (stopped(r.finished)) return res;
              saveARDiffusion(files.warmStart, r.model, { step: r.step, role: 'generator', tokenizer });
              run.log({ event: 'stage done', stage: 'reg', ...res.reg });
            } finally {
              r.model.dispose();
            }
          } finally {
            psi0.dispose();
          }
        }
      }
      // ---- stage 2: conditional score distillation
      if (want('csd')) {
        if (existsSync(files.generator) && existsSync(files.guidance)) res.skipped.push('csd');
        else {
          requirePsi0();
          const dir = stageDir(run, 'csd', { stage: 'csd', sampling: o.sampling, options: o.csd });
          if (warm && !existsSync(files.warmStart)) {
            throw new Error(`dd2: distill: ${files.warmStart} is missing: run --stage reg (or all) in this folder first, or pass --reg-steps 0`);
          }
          const p = (o.csd.regWeight ?? 0) > 0 ? stagePool('the regression term of stage 2 (--csd-reg)') : undefined;
          const psi0 = loadARDiffusion(files.arDiffusion).model;
          const theta0 = warm ? loadARDiffusion(files.warmStart).model : undefined;
          run.log({ event: 'stage start', stage: 'csd', from: warm ? 'warm-start' : 'ar-diffusion' });
          try {
            const r = runCSD(dir, teacher, psi0, o.csd, stageHooks('csd'), { generator: theta0, pool: p });
            try {
              res.ran.push('csd');
              res.csd = { csdLoss: r.csdLoss, fcsLoss: r.fcsLoss, lambda: r.lambda, secondsPerStep: r.secondsPerStep, seconds: r.seconds };
              if (stopped(r.finished)) return res;
              saveARDiffusion(files.guidance, r.pair.guidance, { step: r.step, role: 'guidance', tokenizer });
              saveARDiffusion(files.generator, r.generatorEma, { step: r.step, role: 'generator', tokenizer });
              run.log({ event: 'stage done', stage: 'csd', ...res.csd });
            } finally {
              r.pair.dispose();
              r.generatorEma.dispose();
            }
          } finally {
            psi0.dispose();
            theta0?.dispose();
          }
        }
      }
    } finally {
      teacher.dispose();
    }
    res.finished = true;
    for (const [k, p] of Object.entries(files)) if (existsSync(p)) res.files[k] = p;
    if (res.skipped.length) run.log({ event: 'skipped', stages: res.skipped });
    return res;
  } finally {
    if (!codebook.disposed) codebook.dispose();
  }
}
