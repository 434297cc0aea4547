// Tensor: a typed, shaped, strided view of native storage, with autograd fields.
// Dimension letters in shape comments: B batch, T tokens, C channels, H heads, D head dim, V vocabulary.
import { native } from './native.js';
import { Storage } from './storage.js';
import { BYTES_PER_ELEMENT, type DType, type Device } from './dtype.js';
import { contiguousStrides, fmtShape, sizeOf, type Shape } from './shape.js';
import { collectedWithoutDispose, setTensorCheck, track, untrack } from './engine.js';

/** A recorded operation: the inputs it differentiates with respect to and its backward rule. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** dy -> one gradient (or null) per input, in input order */
  backward: (dy: Tensor) => (Tensor | null)[];
}

// DD2_DEBUG_MEMORY=1: every tensor is watched by a FinalizationRegistry; one that is garbage-collected
// without dispose() is reported with the stack that created it, and its storage reference released.
const debugMemory = !!process.env.DD2_DEBUG_MEMORY && process.env.DD2_DEBUG_MEMORY !== '0';
const leakWatch = debugMemory
  ? new FinalizationRegistry<{ stack: string; storage: Storage; desc: string }>((h) => {
    process.stderr.write(`dd2: leaked tensor ${h.desc} was garbage-collected without dispose(); created at\n${h.stack}\n`);
    h.storage.release();
    collectedWithoutDispose();
  })
  : null;

export class Tensor {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  name = '';
  private _disposed = false;

  constructor(readonly storage: Storage, shape: Shape, readonly dtype: DType, strides?: readonly number[],
              offset = 0) {
    this.shape = [...shape];
    this.strides = strides ? [...strides] : contiguousStrides(shape);
    this.offset = offset;
    this.size = sizeOf(shape);
    storage.retain();
    track(this);
    if (leakWatch) {
      const stack = (new Error().stack ?? '').split('\n').slice(2, 8).join('\n');
      leakWatch.register(this, { stack, storage, desc: this.describe() }, this);
    }
  }

  get device(): Device { return this.storage.device; }
  get rank(): number { return this.shape.length; }
  get disposed(): boolean { return this._disposed; }

  /** The native storage id for kernels. Throws if disposed or not a dense, offset-0 layout. */
  get id(): number {
    this.assertLive();
    if (!this.isDense()) throw new Error(`dd2: internal: tensor ${this.describe()} is a strided view; call contiguous()`);
    return this.storage.id;
  }

  /** Row-major contiguous strides (offset may be non-zero). */
  isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i];
    }
    return true;
  }

  /** Contiguous, starting at element 0 of its storage: what kernels accept directly. */
  isDense(): boolean {
    return this.offset === 0 && this.isContiguous();
  }

  assertLive(): void {
    if (this._disposed) throw new Error(`dd2: tensor ${this.describe()} was used after dispose()`);
  }

  describe(): string {
    return `${this.name ? `'${this.name}' ` : ''}${this.dtype}${fmtShape(this.shape)} on ${this.device}`;
  }

  /** Releases this tensor's reference to its storage. Idempotent. */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    leakWatch?.unregister(this);
    untrack(this);
    this.storage.release();
    this.node = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Copies the data to a new Float32Array (float32 tensors; int32 values are converted). */
  toFloat32Array(): Float32Array {
    const raw = this.readRaw();
    return this.dtype === 'float32' ? new Float32Array(raw) : Float32Array.from(new Int32Array(raw));
  }

  toInt32Array(): Int32Array {
    const raw = this.readRaw();
    return this.dtype === 'int32' ? new Int32Array(raw) : Int32Array.from(new Float32Array(raw), Math.trunc);
  }

  /** Nested JS arrays of numbers. */
  toArray(): unknown {
    const flat = Array.from(this.dtype === 'float32' ? this.toFloat32Array() : this.toInt32Array());
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return flat[off];
      const step = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`dd2: item() needs one element, tensor is ${this.describe()}`);
    return this.dtype === 'float32' ? this.toFloat32Array()[0] : this.toInt32Array()[0];
  }

  toString(): string {
    return `Tensor(${this.describe()})`;
  }

  /** Raw bytes of the logical tensor in row-major order (strided views are gathered). */
  private readRaw(): ArrayBuffer {
    this.assertLive();
    const buf = new ArrayBuffer(this.size * BYTES_PER_ELEMENT);
    if (this.size === 0) return buf;
    if (this.isContiguous()) {
      native.storage_read(this.storage.id, this.offset * BYTES_PER_ELEMENT, new Uint8Array(buf));
      return buf;
    }
    const tmp = Storage.alloc(this.device, this.size * BYTES_PER_ELEMENT);
    try {
      native.copy_strided(tmp.id, 0, contiguousStrides(this.shape), this.storage.id, this.offset,
        [...this.strides], [...this.shape]);
      native.storage_read(tmp.id, 0, new Uint8Array(buf));
    } finally {
      tmp.retain();
      tmp.release();
    }
    return buf;
  }
}

setTensorCheck((x: unknown): x is Tensor => x instanceof Tensor);

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
