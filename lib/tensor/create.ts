// Tensor creation: empty/zeros/full/arange, from host arrays and ndarray, device transfers.
import ndarray from 'ndarray';
import { native } from './native.js';
import { Storage } from './storage.js';
import { Tensor } from './tensor.js';
import { BYTES_PER_ELEMENT, parseDevice, type DType, type Device } from './dtype.js';
import { checkShape, fmtShape, sizeOf, type Shape } from './shape.js';

export interface TensorOptions { dtype?: DType; device?: Device }

let defaultDevice: Device = parseDevice(process.env.DD2_DEFAULT_DEVICE ?? 'cpu');

/** The device used when a creation function is given none (DD2_DEFAULT_DEVICE, else cpu). The GPU
 *  test run sets DD2_DEFAULT_DEVICE=cuda so the whole op suite runs on CUDA. */
export function getDefaultDevice(): Device {
  return defaultDevice;
}

export function setDefaultDevice(d: Device): void {
  defaultDevice = parseDevice(d);
}

/** Uninitialised tensor (contents are whatever the allocator returns). */
export function empty(shape: Shape, opts: TensorOptions = {}): Tensor {
  checkShape(shape, 'empty');
  const st = Storage.alloc(opts.device ?? defaultDevice, sizeOf(shape) * BYTES_PER_ELEMENT);
  return new Tensor(st, shape, opts.dtype ?? 'float32');
}

export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  checkShape(shape, 'zeros');
  const st = Storage.alloc(opts.device ?? defaultDevice, sizeOf(shape) * BYTES_PER_ELEMENT, true);
  return new Tensor(st, shape, opts.dtype ?? 'float32');
}

export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  const t = empty(shape, opts);
  if (t.dtype === 'float32') native.fill_f32(t.id, t.size, value);
  else native.fill_i32(t.id, t.size, value);
  return t;
}

export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device });
}

type HostData = Float32Array | Int32Array | number[] | readonly number[];

/** A tensor holding a copy of `data` (row-major). dtype defaults to int32 for Int32Array input. */
export function tensor(data: HostData, shape?: Shape, opts: TensorOptions = {}): Tensor {
  const dtype: DType = opts.dtype ?? (data instanceof Int32Array ? 'int32' : 'float32');
  const shp = shape ?? [data.length];
  if (sizeOf(shp) !== data.length) {
    throw new RangeError(`dd2: tensor: ${data.length} values do not fill shape ${fmtShape(shp)}`);
  }
  const host = dtype === 'float32'
    ? (data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>))
    : (data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>));
  const t = empty(shp, { dtype, device: opts.device });
  if (host.length) native.storage_write(t.storage.id, 0, host);
  return t;
}

export function scalar(v: number, opts: TensorOptions = {}): Tensor {
  return tensor([v], [], opts);
}

export function arange(n: number, opts: TensorOptions = {}): Tensor {
  const a = Array.from({ length: n }, (_, i) => i);
  return tensor(a, [n], opts);
}

/** From an ndarray (any strides); float32 unless the data is an Int32Array. */
export function fromNdarray(a: ndarray.NdArray, opts: TensorOptions = {}): Tensor {
  const shape = a.shape;
  const n = sizeOf(shape);
  const isInt = a.data instanceof Int32Array;
  const out = isInt ? new Int32Array(n) : new Float32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    out[i] = a.get(...idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return tensor(out, shape, { dtype: opts.dtype ?? (isInt ? 'int32' : 'float32'), device: opts.device });
}

/** A row-major ndarray over a host copy of the tensor. */
export function toNdarray(t: Tensor): ndarray.NdArray<Float32Array | Int32Array> {
  const data = t.dtype === 'float32' ? t.toFloat32Array() : t.toInt32Array();
  return ndarray(data, [...t.shape]);
}

/** A copy on another device (same dtype and shape). */
export function toDevice(t: Tensor, device: Device): Tensor {
  t.assertLive();
  const out = empty(t.shape, { dtype: t.dtype, device });
  if (t.isContiguous()) {
    native.storage_copy(out.storage.id, 0, t.storage.id, t.offset * BYTES_PER_ELEMENT, t.size * BYTES_PER_ELEMENT);
  } else {
    const host = t.dtype === 'float32' ? t.toFloat32Array() : t.toInt32Array();
    native.storage_write(out.storage.id, 0, host);
  }
  return out;
}
