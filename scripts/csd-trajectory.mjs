// Stage 2 (CSD) trajectory for tuning: runs the CSD stage from a finished stage-1 folder in chunks, resuming
// from the stage checkpoint each time (so the chunks chain exactly like one run), and writes the EMA generator
// after every chunk as <out>/gens/gen-<step>.safetensors; `dd2 eval --model <out>/gens/*.safetensors` then
// gives one row per point of the trajectory.
// Usage: node scripts/csd-trajectory.mjs <run folder with teacher-continuous + ar-diffusion> <out> <chunk>
//        '<CsdOptions JSON overriding the defaults>' [cpu|cuda]
// Environment: VQ = the tokenizer (.safetensors) whose codebook the teacher uses (required); WARM = a warm-started
// generator (warm-start.safetensors of a distill run) to start θ from instead of ψ0; POOL = the flow-map pool
// (gts/pool.safetensors) the regression term reads (needed when regWeight > 0, the default).
// The teacher's probabilities use `dd2 distill`'s default sampling settings (defaultSampling: cfg 2.0, no top-k/top-p).
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const imp = (p) => import(join(root, 'dist/lib', p));
const [psiDir, out, chunkArg, json = '{}', device = 'cpu'] = process.argv.slice(2);
const VQ = process.env.VQ;
if (!psiDir || !out || !(Number(chunkArg) > 0) || !VQ) {
  console.error('usage: VQ=<tokenizer> node scripts/csd-trajectory.mjs <stage-1 run folder> <out> <chunk> [options JSON] [cpu|cuda]');
  process.exit(2);
}
const { tidy, noGrad, keep } = await imp('tensor/engine.js');
const { contiguous } = await imp('tensor/ops/shape.js');
const { defaultCsdOptions, runCSD } = await imp('distill/csd.js');
const { ARScoreTeacher } = await imp('distill/teacher.js');
const { readPool } = await imp('distill/gts.js');
const { defaultSampling } = await imp('distill/pipeline.js');
const { loadContinuousGPT } = await imp('models/continuous-gpt.js');
const { loadARDiffusion, saveARDiffusion } = await imp('models/ar-diffusion.js');
const { loadVQ } = await imp('models/vq.js');
const { RunDir } = await imp('io/checkpoint.js');
(await imp('cli/options.js')).useDevice(device);
const chunk = Number(chunkArg);
const o = { ...defaultCsdOptions, logEvery: 50, ...JSON.parse(json), ckptEvery: chunk };
const vq = loadVQ(VQ);
const codebook = noGrad(() => keep(tidy(() => contiguous(vq.codes()))));
vq.dispose();
const teacher = new ARScoreTeacher(loadContinuousGPT(join(psiDir, 'teacher-continuous.safetensors')).model, codebook,
  defaultSampling);
const psi0 = loadARDiffusion(join(psiDir, 'ar-diffusion.safetensors')).model;
const init = { generator: process.env.WARM ? loadARDiffusion(process.env.WARM).model : undefined,
  pool: process.env.POOL ? readPool(process.env.POOL) : undefined };
if (o.regWeight > 0 && !init.pool) {
  console.error('csd-trajectory: regWeight > 0 needs POOL=<gts/pool.safetensors drawn through the flow map> (or pass "regWeight":0)');
  process.exit(2);
}
mkdirSync(join(out, 'gens'), { recursive: true });
const csdDir = join(out, 'csd');
const run = existsSync(join(csdDir, 'run.json')) ? RunDir.open(csdDir) : RunDir.create(csdDir, o);
const t0 = performance.now();
for (;;) {
  const r = runCSD(run, teacher, psi0, o, { stopAfter: chunk, json: true }, init);
  saveARDiffusion(join(out, 'gens', `gen-${String(r.step).padStart(5, '0')}.safetensors`), r.generatorEma,
    { step: r.step, role: 'generator', tokenizer: VQ });
  console.log(JSON.stringify({ step: r.step, csdLoss: r.csdLoss, fcsLoss: r.fcsLoss, lambda: r.lambda,
    secondsPerStep: r.secondsPerStep, seconds: (performance.now() - t0) / 1000 }));
  r.pair.dispose();
  r.generatorEma.dispose();
  if (r.finished) break;
}
