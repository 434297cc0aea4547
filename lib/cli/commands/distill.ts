// `dd2 distill`: distills an AR teacher (a 'gpt' checkpoint from dd2 train ar) into a one-step generator with
// DD2: stage 0 adapt (continuous-input teacher), stage 1 GTS (AR-diffusion model), the regression warm start of
// the generator on flow-map pairs (reg, our choice), stage 2 CSD (generator and guidance network), in a run folder with one subfolder per stage (lib/distill/pipeline.ts). Every
// hyper-parameter is an option; the defaults are the paper's where they apply (Adam betas, CFG 2, α = 1,
// λ normalisation, m = 4 draws, t ranges, LR warm-up from 1e-6, EMA rate, clip 1) with step counts and widths
// scaled for MNIST on a 2-core CPU (tiny teacher, 7×7 tokens, V = 512, C = 8): all stages in about 25 minutes.
// --resume continues the run in --out with its stored options; finished stages are skipped.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import type { Device } from '../../tensor/dtype.js';
import { RunDir } from '../../io/checkpoint.js';
import { defaultDistillOptions, runDistill, stageInProgress, STAGES, type DistillOptions, type Stage } from '../../distill/pipeline.js';
import { addCommonOptions, emitSummary, info, parseChoiceArg, parseFloatArg, parseIntArg, UsageError, useDevice } from '../options.js';

interface RawOptions {
  teacher?: string; tokenizer?: string; tokens?: string; testTokens?: string; stage: Stage;
  cfg: number; topK: number; topP: number; temperature: number;
  headWidth: number; headDepth: number; headFreq: number;
  inputHidden: number; fitSteps: number; fitLr: number; adaptSteps: number; adaptBatch: number; adaptLr: number; adaptWarmup: number;
  poolSize: number; poolBatch: number; gtsHeadSteps: number; gtsSteps: number; gtsBatch: number; gtsDraws: number; gtsLr: number;
  gtsWarmup: number; poolFlowSteps: number;
  regSteps: number; regBatch: number; regLr: number; regWarmup: number; csdReg: number; csdRegBatch: number;
  csdSteps: number; guidanceSteps: number; guidanceStepsAfter: number; csdBatch: number; guidanceBatch: number; fcsDraws: number; csdDraws: number; lrGen: number;
  lrGui: number; lrStart: number; csdWarmup: number; csdDecay: number; alpha: number; lambdaMin: number; detached: boolean; tMin: number; tMax: number;
  alignAt: number; alignSteps: number; emaCap: number;
  beta2: number; clip: number; ckptEvery: number; logEvery: number;
  device: Device; seed: number; out?: string; json: boolean; resume: boolean;
}

function toOptions(r: RawOptions): DistillOptions {
  if (!r.teacher) throw new UsageError('--teacher: the AR teacher checkpoint (gpt.safetensors from dd2 train ar) is required (see --help)');
  if (r.tMin >= r.tMax) throw new UsageError(`--t-min ${r.tMin} must be below --t-max ${r.tMax} (see --help)`);
  const d = defaultDistillOptions(r.teacher);
  const betas: [number, number] = [0.9, r.beta2];
  const common = { seed: r.seed, ckptEvery: r.ckptEvery, logEvery: r.logEvery, clip: r.clip, betas };
  return {
    ...d, tokenizer: r.tokenizer, tokens: r.tokens, testTokens: r.testTokens, stage: r.stage,
    sampling: { cfg: r.cfg, topK: r.topK, topP: r.topP, temperature: r.temperature },
    head: { width: r.headWidth, depth: r.headDepth, freqDim: r.headFreq },
    adapt: { ...d.adapt, ...common, inputHidden: r.inputHidden, fitSteps: r.fitSteps, fitLr: r.fitLr, tuneSteps: r.adaptSteps,
      batchSize: r.adaptBatch, lr: r.adaptLr, warmup: r.adaptWarmup },
    gts: { ...d.gts, ...common, poolSize: r.poolSize, poolBatch: r.poolBatch, headSteps: r.gtsHeadSteps, fullSteps: r.gtsSteps,
      batchSize: r.gtsBatch, draws: r.gtsDraws, lr: r.gtsLr, warmup: r.gtsWarmup, poolFlowSteps: r.poolFlowSteps },
    reg: { ...d.reg, ...common, steps: r.regSteps, batchSize: r.regBatch, lr: r.regLr, warmup: r.regWarmup },
    csd: { ...d.csd, ...common, steps: r.csdSteps, guidanceSteps: r.guidanceSteps, guidanceStepsAfter: r.guidanceStepsAfter,
      batchSize: r.csdBatch, guidanceBatch: r.guidanceBatch, draws: r.fcsDraws, csdDraws: r.csdDraws, lrGen: r.lrGen, lrGui: r.lrGui, lrStart: r.lrStart, warmup: r.csdWarmup, decay: r.csdDecay, alpha: r.alpha,
      lambdaMin: r.lambdaMin, detached: r.detached, tMin: r.tMin, tMax: r.tMax, alignAt: r.alignAt, alignSteps: r.alignSteps,
      emaCap: r.emaCap, regWeight: r.csdReg, regBatch: r.csdRegBatch },
  };
}

export function makeDistillCommand(): Command {
  const d = defaultDistillOptions('');
  const int = (name: string, min = 1) => parseIntArg(name, { min });
  const num = (name: string, rule: Parameters<typeof parseFloatArg>[1]) => parseFloatArg(name, rule);
  const cmd = new Command('distill')
    .description('distill an AR teacher into a one-step generator with DD2 (stages: adapt, GTS, CSD)')
    .addOption(new Option('--teacher <file>', 'the AR teacher (gpt.safetensors from dd2 train ar)'))
    .addOption(new Option('--tokenizer <file>', 'its VQ tokenizer (default: the one recorded in the teacher checkpoint)'))
    .addOption(new Option('--tokens <file>', 'token cache for stage 0 (default: the one the teacher was trained on)'))
    .addOption(new Option('--test-tokens <file>', 'token cache for the stage-0 NLL figures (default: the --tokens path with ' +
      '"train" replaced by "test" if it exists, else the last 10% of --tokens)'))
    .addOption(new Option('--stage <name>', 'which stages to run: all, adapt, gts, reg or csd (earlier stages must be done)')
      .default('all').argParser(parseChoiceArg('--stage', STAGES)))
    // the teacher's sampling settings (score probabilities and stage-1 samples)
    .addOption(new Option('--cfg <scale>', 'classifier-free guidance of the teacher (LlamaGen convention; 1 = none)')
      .default(d.sampling.cfg).argParser(num('--cfg', {})))
    .addOption(new Option('--top-k <k>', 'keep the teacher\'s k most likely codes (0 = all; 0 < k < V: sparse probabilities)')
      .default(d.sampling.topK).argParser(int('--top-k', 0)))
    .addOption(new Option('--top-p <p>', 'nucleus mass of the teacher (1 = off)').default(d.sampling.topP).argParser(num('--top-p', { above: 0, max: 1 })))
    .addOption(new Option('--temperature <t>', 'softmax temperature of the teacher').default(d.sampling.temperature)
      .argParser(num('--temperature', { above: 0 })))
    // the MLP head
    .addOption(new Option('--head-width <n>', 'width of the MLP head of the AR-diffusion model').default(d.head.width).argParser(int('--head-width')))
    .addOption(new Option('--head-depth <n>', 'residual blocks of the MLP head').default(d.head.depth).argParser(int('--head-depth')))
    .addOption(new Option('--head-freq <n>', 'size of the sinusoidal time embedding').default(d.head.freqDim).argParser(int('--head-freq', 2)))
    // stage 0
    .addOption(new Option('--input-hidden <n>', 'stage 0: hidden width of the input MLP').default(d.adapt.inputHidden).argParser(int('--input-hidden')))
    .addOption(new Option('--fit-steps <n>', 'stage 0: Adam steps fitting the input MLP to the token embeddings').default(d.adapt.fitSteps)
      .argParser(int('--fit-steps', 0)))
    .addOption(new Option('--fit-lr <x>', 'stage 0: learning rate of the fit').default(d.adapt.fitLr).argParser(num('--fit-lr', { above: 0 })))
    .addOption(new Option('--adapt-steps <n>', 'stage 0: fine-tuning steps of the whole model (cross-entropy on the token cache)')
      .default(d.adapt.tuneSteps).argParser(int('--adapt-steps', 0)))
    .addOption(new Option('--adapt-batch <n>', 'stage 0: images per fine-tuning step').default(d.adapt.batchSize).argParser(int('--adapt-batch')))
    .addOption(new Option('--adapt-lr <x>', 'stage 0: fine-tuning learning rate').default(d.adapt.lr).argParser(num('--adapt-lr', { above: 0 })))
    .addOption(new Option('--adapt-warmup <n>', 'stage 0: fine-tuning warm-up steps').default(d.adapt.warmup).argParser(int('--adapt-warmup', 0)))
    // stage 1
    .addOption(new Option('--pool-size <n>', 'stage 1: teacher sequences sampled up front (the GTS data)').default(d.gts.poolSize)
      .argParser(int('--pool-size')))
    .addOption(new Option('--pool-batch <n>', 'stage 1: sequences per teacher sampling batch').default(d.gts.poolBatch).argParser(int('--pool-batch')))
    .addOption(new Option('--gts-head-steps <n>', 'stage 1: steps training the MLP head alone (backbone frozen)').default(d.gts.headSteps)
      .argParser(int('--gts-head-steps', 0)))
    .addOption(new Option('--gts-steps <n>', 'stage 1: steps training the whole model after the head-only steps').default(d.gts.fullSteps)
      .argParser(int('--gts-steps', 0)))
    .addOption(new Option('--gts-batch <n>', 'stage 1: sequences per step').default(d.gts.batchSize).argParser(int('--gts-batch')))
    .addOption(new Option('--gts-draws <m>', 'stage 1: noise draws per token and step').default(d.gts.draws).argParser(int('--gts-draws')))
    .addOption(new Option('--gts-lr <x>', 'stage 1: learning rate').default(d.gts.lr).argParser(num('--gts-lr', { above: 0 })))
    .addOption(new Option('--gts-warmup <n>', 'stage 1: warm-up steps of each phase').default(d.gts.warmup).argParser(int('--gts-warmup', 0)))
    .addOption(new Option('--pool-flow-steps <n>', 'stage 1: draw the pool through the per-token flow map (DD1\'s noise → token ODE) with ' +
      'n Euler steps, keeping the noise for the regression warm start (0: categorical draws, no warm start)').default(d.gts.poolFlowSteps)
      .argParser(int('--pool-flow-steps', 0)))
    // regression warm start (our choice: DD1's (noise, sequence) pairs, DMD's regression loss)
    .addOption(new Option('--reg-steps <n>', 'warm start: Adam steps regressing the generator onto the flow-map pairs of the stage-1 pool ' +
      '(0: start stage 2 from the AR-diffusion model, as the paper does)').default(d.reg.steps).argParser(int('--reg-steps', 0)))
    .addOption(new Option('--reg-batch <n>', 'warm start: sequences per step').default(d.reg.batchSize).argParser(int('--reg-batch')))
    .addOption(new Option('--reg-lr <x>', 'warm start: learning rate').default(d.reg.lr).argParser(num('--reg-lr', { above: 0 })))
    .addOption(new Option('--reg-warmup <n>', 'warm start: warm-up steps').default(d.reg.warmup).argParser(int('--reg-warmup', 0)))
    // stage 2
    .addOption(new Option('--csd-steps <n>', 'stage 2: generator updates').default(d.csd.steps).argParser(int('--csd-steps', 0)))
    .addOption(new Option('--guidance-steps <K>', 'stage 2: guidance updates per generator update').default(d.csd.guidanceSteps)
      .argParser(int('--guidance-steps', 0)))
    .addOption(new Option('--guidance-steps-after <K>', 'stage 2: guidance updates per generator update after performance alignment')
      .default(d.csd.guidanceStepsAfter).argParser(int('--guidance-steps-after', 0)))
    .addOption(new Option('--csd-batch <n>', 'stage 2: sequences per update (both networks)').default(d.csd.batchSize).argParser(int('--csd-batch')))
    .addOption(new Option('--guidance-batch <n>', 'stage 2: sequences per guidance update (0: --csd-batch)').default(d.csd.guidanceBatch)
      .argParser(int('--guidance-batch', 0)))
    .addOption(new Option('--fcs-draws <m>', 'stage 2: noise draws per token in the guidance loss').default(d.csd.draws).argParser(int('--fcs-draws')))
    .addOption(new Option('--csd-draws <m>', 'stage 2: noise draws (t, ε) per generated token in the generator loss').default(d.csd.csdDraws)
      .argParser(int('--csd-draws')))
    .addOption(new Option('--lr-gen <x>', 'stage 2: generator learning rate after warm-up').default(d.csd.lrGen).argParser(num('--lr-gen', { above: 0 })))
    .addOption(new Option('--lr-gui <x>', 'stage 2: guidance learning rate after warm-up').default(d.csd.lrGui).argParser(num('--lr-gui', { above: 0 })))
    .addOption(new Option('--lr-start <x>', 'stage 2: learning rate at the start of the warm-up').default(d.csd.lrStart).argParser(num('--lr-start', { min: 0 })))
    .addOption(new Option('--csd-warmup <n>', 'stage 2: warm-up length in generator updates').default(d.csd.warmup).argParser(int('--csd-warmup', 0)))
    .addOption(new Option('--csd-decay <fraction>', 'stage 2: the generator LR falls linearly to 0 over this last fraction of the updates (0: constant)')
      .default(d.csd.decay).argParser(num('--csd-decay', { min: 0, max: 1 })))
    .addOption(new Option('--alpha <x>', 'stage 2: SiD alpha').default(d.csd.alpha).argParser(num('--alpha', {})))
    .addOption(new Option('--lambda-min <x>', 'stage 2: floor of the per-token normaliser mean|x − D_teacher|').default(d.csd.lambdaMin)
      .argParser(num('--lambda-min', { above: 0 })))
    .addOption(new Option('--detached', 'stage 2: treat both denoisers as constants (the per-token DMD gradient)').default(false))
    .addOption(new Option('--t-min <t>', 'stage 2: smallest CSD time').default(d.csd.tMin).argParser(num('--t-min', { above: 0, below: 1 })))
    .addOption(new Option('--t-max <t>', 'stage 2: largest CSD time').default(d.csd.tMax).argParser(num('--t-max', { above: 0, max: 1 })))
    .addOption(new Option('--align-at <n>', 'stage 2: performance alignment at this generator update (0: none)').default(d.csd.alignAt)
      .argParser(int('--align-at', 0)))
    .addOption(new Option('--align-steps <n>', 'stage 2: guidance-only updates of the performance alignment').default(d.csd.alignSteps)
      .argParser(int('--align-steps', 0)))
    .addOption(new Option('--csd-reg <w>', 'stage 2: weight of the flow-map regression loss added to every generator update (0: pure CSD)')
      .default(d.csd.regWeight).argParser(num('--csd-reg', { min: 0 })))
    .addOption(new Option('--csd-reg-batch <n>', 'stage 2: pool sequences per regression term').default(d.csd.regBatch).argParser(int('--csd-reg-batch')))
    .addOption(new Option('--ema-cap <x>', 'stage 2: largest EMA rate of the generator (rate min(cap, (i+1)/(i+10)))').default(d.csd.emaCap)
      .argParser(num('--ema-cap', { min: 0, max: 1 })))
    // all stages
    .addOption(new Option('--beta2 <x>', 'Adam beta2 of every stage (beta1 is 0.9)').default(d.csd.betas[1]).argParser(num('--beta2', { min: 0, below: 1 })))
    .addOption(new Option('--clip <x>', 'gradient-norm clipping of every stage').default(d.csd.clip).argParser(num('--clip', { above: 0 })))
    .addOption(new Option('--ckpt-every <n>', 'checkpoint every n steps of a stage (and at its end)').default(d.gts.ckptEvery)
      .argParser(int('--ckpt-every')))
    .addOption(new Option('--log-every <n>', 'a log.jsonl line every n steps').default(d.gts.logEvery).argParser(int('--log-every')));
  addCommonOptions(cmd, { out: 'runs/distill' });
  cmd.action((raw: RawOptions) => {
    useDevice(raw.device);
    if (!raw.out) throw new UsageError('--out: an output folder is required (see --help)');
    let opts: DistillOptions;
    let run: RunDir;
    if (raw.resume) {
      if (!existsSync(join(raw.out, 'run.json'))) throw new UsageError(`--resume: ${raw.out} holds no run to resume (no run.json)`);
      run = RunDir.open(raw.out);
      const stored = run.config as { command?: string; options?: DistillOptions } | null;
      if (stored?.command !== 'distill' || !stored.options) throw new UsageError(`--resume: ${run.dir} is not a 'distill' run`);
      opts = stored.options;
      info(`distill: resuming ${run.dir} with its stored options (command-line options are ignored)`);
    } else {
      opts = toOptions(raw);
      if (!existsSync(opts.teacher)) throw new UsageError(`--teacher: ${opts.teacher} does not exist`);
      if (existsSync(join(raw.out, 'run.json'))) {
        const open = RunDir.open(raw.out);
        const busy = (['adapt', 'gts', 'reg', 'csd'] as const).filter((s) => stageInProgress(open, s) && !stageDone(open.dir, s));
        if (busy.length) {
          throw new UsageError(`--out: ${raw.out} holds an unfinished ${busy.join(', ')} stage; pass --resume to continue it, ` +
            'or choose another --out');
        }
      }
      run = RunDir.create(raw.out, { command: 'distill', options: opts });
    }
    info(`distill: stage ${opts.stage} of ${opts.teacher}, run folder ${run.dir}`);
    const r = runDistill(run, opts, { json: raw.json });
    emitSummary(raw.json, {
      finished: r.finished, ran: r.ran.join(',') || 'none', skipped: r.skipped.join(',') || undefined, ...flat('adapt', r.adapt),
      ...flat('gts', r.gts), ...flat('reg', r.reg), ...flat('csd', r.csd), ...r.files, runDir: r.runDir,
    });
  });
  return cmd;
}

/** Whether a stage's final file exists in a run folder. */
function stageDone(dir: string, s: 'adapt' | 'gts' | 'reg' | 'csd'): boolean {
  const f = { adapt: 'teacher-continuous', gts: 'ar-diffusion', reg: 'warm-start', csd: 'generator' }[s];
  return existsSync(join(dir, `${f}.safetensors`));
}

/** {a: 1} under prefix p -> {pA: 1} (for the summary). */
function flat(p: string, o: Record<string, number> | undefined): Record<string, number> {
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [`${p}${k[0].toUpperCase()}${k.slice(1)}`, Number.isFinite(v) ? Number(v.toPrecision(5)) : v]));
}
