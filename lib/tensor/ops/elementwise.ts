// Elementwise ops with NumPy broadcasting: unary math, binary arithmetic, tensor-scalar ops, casts.
// Broadcast operands are read through strides (0 on broadcast axes); backward rules sum gradients
// back to each operand's shape.
import { BinaryOp, native, ScalarOp, UnaryOp, type BinaryName, type ScalarName, type UnaryName } from '../native.js';
import { Tensor } from '../tensor.js';
import { empty } from '../create.js';
import { check, expectDtype } from '../kernel.js';
import { record } from '../../autograd/tape.js';
import { broadcastShapes, broadcastStrides } from '../shape.js';
import { contiguous } from './shape.js';
import { sumToShape } from './reduce.js';

/** y = f(x) for the named unary function. */
export function unary(x: Tensor, op: UnaryName): Tensor {
  check(op, ['unary_forward'], x);
  expectDtype(op, x, 'float32');
  const xc = contiguous(x);
  const y = empty(x.shape, { device: x.device });
  native.unary_forward(UnaryOp[op], y.id, xc.id, x.size);
  record(op, [x], y, (dy) => {
    const dx = empty(x.shape, { device: x.device });
    const dyc = contiguous(dy);
    native.unary_backward(UnaryOp[op], dx.id, dyc.id, xc.id, y.id, x.size);
    return [dx];
  });
  if (xc !== x && !y.node) xc.dispose();
  return y;
}

export const neg = (x: Tensor): Tensor => unary(x, 'neg');
export const exp = (x: Tensor): Tensor => unary(x, 'exp');
export const log = (x: Tensor): Tensor => unary(x, 'log');
export const sqrt = (x: Tensor): Tensor => unary(x, 'sqrt');
export const rsqrt = (x: Tensor): Tensor => unary(x, 'rsqrt');
export const tanh = (x: Tensor): Tensor => unary(x, 'tanh');
export const sigmoid = (x: Tensor): Tensor => unary(x, 'sigmoid');
export const silu = (x: Tensor): Tensor => unary(x, 'silu');
/** exact GELU, x·Φ(x) */
export const gelu = (x: Tensor): Tensor => unary(x, 'gelu');
/** tanh approximation of GELU */
export const geluTanh = (x: Tensor): Tensor => unary(x, 'geluTanh');
export const relu = (x: Tensor): Tensor => unary(x, 'relu');
export const abs = (x: Tensor): Tensor => unary(x, 'abs');
export const square = (x: Tensor): Tensor => unary(x, 'square');
export const sin = (x: Tensor): Tensor => unary(x, 'sin');
export const cos = (x: Tensor): Tensor => unary(x, 'cos');
export const reciprocal = (x: Tensor): Tensor => unary(x, 'reciprocal');

/** Raw broadcasting kernel call, no autograd. */
function binaryRaw(a: Tensor, b: Tensor, op: BinaryName): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const ac = a.offset ? contiguous(a) : a, bc = b.offset ? contiguous(b) : b;
  const y = empty(shape, { device: a.device });
  native.binary_forward(BinaryOp[op], y.id, ac.storage.id, bc.storage.id, shape,
    broadcastStrides(ac.shape, ac.strides, shape), broadcastStrides(bc.shape, bc.strides, shape));
  if (ac !== a) ac.dispose();
  if (bc !== b) bc.dispose();
  return y;
}

/** y = a (op) b with broadcasting. */
export function binary(a: Tensor, b: Tensor, op: BinaryName): Tensor {
  check(op, ['binary_forward'], a, b);
  expectDtype(op, a, 'float32', 'left operand');
  expectDtype(op, b, 'float32', 'right operand');
  const y = binaryRaw(a, b, op);
  return record(op, [a, b], y, (dy) => {
    const both = (ga: Tensor | null, gb: Tensor | null): (Tensor | null)[] => [
      ga && a.requiresGrad ? sumToShape(ga, a.shape) : null,
      gb && b.requiresGrad ? sumToShape(gb, b.shape) : null,
    ];
    switch (op) {
      case 'add': return both(dy, dy);
      case 'sub': return both(dy, a.requiresGrad || b.requiresGrad ? scalarOp(dy, -1, 'mul') : null);
      case 'mul': return both(b.requiresGrad || a.requiresGrad ? binaryRaw(dy, b, 'mul') : null, binaryRaw(dy, a, 'mul'));
      case 'div': {
        const ga = binaryRaw(dy, b, 'div');
        const gb = scalarOp(binaryRaw(ga, y, 'mul'), -1, 'mul');   // -dy·a/b² = -(dy/b)·y
        return both(ga, gb);
      }
      case 'maximum':
      case 'minimum': {
        // Ties send the gradient to the left operand.
        const mask = scalarOp(binaryRaw(a, b, 'sub'), 0, op === 'maximum' ? 'ge' : 'le');
        const ga = binaryRaw(dy, mask, 'mul');
        return both(ga, binaryRaw(dy, scalarOp(mask, 1, 'rsub'), 'mul'));
      }
      case 'pow': {
        // d/da = b·a^(b-1) = b·y/a ; d/db = y·log(a)
        const ga = binaryRaw(binaryRaw(dy, b, 'mul'), binaryRaw(y, a, 'div'), 'mul');
        const gb = b.requiresGrad ? binaryRaw(binaryRaw(dy, y, 'mul'), unary(a, 'log'), 'mul') : null;
        return both(ga, gb);
      }
    }
  });
}

export const add = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'add');
export const sub = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'sub');
export const mul = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'mul');
export const div = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'div');
export const maximum = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'maximum');
export const minimum = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'minimum');
export const pow = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'pow');

/** y = f(x, s) for a number s. Comparisons (ge, gt, le, lt, eq) give 1/0 and no gradient. */
export function scalarOp(x: Tensor, s: number, op: ScalarName): Tensor {
  check(op, ['scalar_forward'], x);
  expectDtype(op, x, 'float32');
  const xc = contiguous(x);
  const y = empty(x.shape, { device: x.device });
  native.scalar_forward(ScalarOp[op], y.id, xc.id, s, x.size);
  const differentiable = op === 'add' || op === 'mul' || op === 'pow' || op === 'rsub' || op === 'rdiv' ||
    op === 'maximum' || op === 'minimum';
  if (differentiable) {
    record(`${op}Scalar`, [x], y, (dy) => {
      switch (op) {
        case 'add': return [dy];
        case 'mul': return [scalarOp(dy, s, 'mul')];
        case 'rsub': return [scalarOp(dy, -1, 'mul')];
        case 'pow': return [binaryRaw(dy, scalarOp(scalarOp(xc, s - 1, 'pow'), s, 'mul'), 'mul')];
        case 'rdiv': return [scalarOp(binaryRaw(dy, binaryRaw(y, xc, 'div'), 'mul'), -1, 'mul')];   // -s/x²
        default: return [binaryRaw(dy, scalarOp(xc, s, op === 'maximum' ? 'ge' : 'le'), 'mul')];
      }
    });
  }
  if (xc !== x && !y.node) xc.dispose();
  return y;
}

export const addScalar = (x: Tensor, s: number): Tensor => scalarOp(x, s, 'add');
export const mulScalar = (x: Tensor, s: number): Tensor => scalarOp(x, s, 'mul');
export const powScalar = (x: Tensor, s: number): Tensor => scalarOp(x, s, 'pow');
/** max(x, lo) then min(., hi) */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  const a = scalarOp(x, lo, 'maximum');
  const b = scalarOp(a, hi, 'minimum');
  if (!b.node) a.dispose();
  return b;
}

/** float32 <-> int32 conversion (float to int truncates toward zero). No gradient. */
export function cast(x: Tensor, dtype: 'float32' | 'int32'): Tensor {
  if (x.dtype === dtype) return contiguous(x);
  check('cast', [dtype === 'float32' ? 'cast_i32_to_f32' : 'cast_f32_to_i32'], x);
  const xc = contiguous(x);
  const y = empty(x.shape, { dtype, device: x.device });
  if (dtype === 'float32') native.cast_i32_to_f32(y.id, xc.id, x.size);
  else native.cast_f32_to_i32(y.id, xc.id, x.size);
  if (xc !== x) xc.dispose();
  return y;
}
