// Child process of test/io/atomic-kill.test.ts (not a test itself): saves training states of a module
// with N parameters forever, every value of set s equal to s (model, EMA and AdamW moments), and
// prints "saved <s>" after each complete save, until the parent SIGKILLs it.
// Usage: node --import <ts loader> kill-writer.ts <run dir> <N>
import { tensor } from '../../lib/tensor/create.js';
import { Module } from '../../lib/nn/module.js';
import { AdamW, EMA } from '../../lib/nn/optim.js';
import { RunDir } from '../../lib/io/checkpoint.js';

const [dir, nText] = process.argv.slice(2);
const N = Number(nText);

class Big extends Module {
  constructor() {
    super();
    this.registerParameter('w', tensor(new Float32Array(N), [N]));
    this.registerParameter('b', tensor(new Float32Array(7), [7]));
  }
}

const model = new Big();
const opt = new AdamW(model.parameters(), { lr: 1e-3 });
const ema = new EMA(model, 0);   // decay 0: update() copies the parameters
const run = RunDir.open(dir);
for (let s = 1; ; s++) {
  model.loadStateDict(new Map([['w', new Float32Array(N).fill(s)], ['b', new Float32Array(7).fill(s)]]));
  ema.update();
  const fill = (n: number) => new Float32Array(n).fill(s);
  opt.loadStateDict({
    step: s, groups: [{ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }],
    params: [{ step: s, m: fill(N), v: fill(N) }, { step: s, m: fill(7), v: fill(7) }],
  });
  run.saveTrainingState('ck', {
    module: model, optimizer: opt, ema, step: s, rng: { seed: '9', offset: 4 * s }, batcher: { pos: s },
    meta: { kind: 'big', config: { N }, step: s },
  });
  process.stdout.write(`saved ${s}\n`);
}
