// One optimiser update from a scalar loss, the step every training loop of dd2 repeats: the loss closure records
// its graph inside tidy(), backward() fills the parameters' .grad, the global gradient norm is clipped, then
// AdamW steps and the gradients are cleared. Returns the loss value and the gradient norm before clipping.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/engine.js';
import { backward } from '../autograd/tape.js';
import { clipGradNorm, type AdamW } from './optim.js';

export function lossStep(opt: AdamW, params: Iterable<Tensor>, clip: number, loss: () => Tensor): { loss: number; gradNorm: number } {
  const value = tidy(() => {
    const l = loss();
    backward(l);
    return l.item();
  });
  const gradNorm = clipGradNorm(params, clip);
  opt.step();
  opt.zeroGrad();
  return { loss: value, gradNorm };
}
