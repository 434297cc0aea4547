// Public API of dd2's tensor engine: tensors, memory scopes, autograd, ops, randomness.
export { Tensor, isTensor } from './tensor/tensor.js';
export type { DType, Device } from './tensor/dtype.js';
export { empty, zeros, ones, full, zerosLike, tensor, scalar, arange, fromNdarray, toNdarray, toDevice } from './tensor/create.js';
export { tidy, keep, noGrad, memory, liveTensors, isGradEnabled } from './tensor/engine.js';
export { backward, zeroGrad } from './autograd/tape.js';
export { Generator } from './tensor/random.js';
export { native, addonPath } from './tensor/native.js';
export { supports } from './tensor/kernel.js';
export * from './tensor/ops/elementwise.js';
export * from './tensor/ops/reduce.js';
export * from './tensor/ops/shape.js';
export * from './tensor/ops/matmul.js';
export { dropout } from './tensor/ops/dropout.js';
