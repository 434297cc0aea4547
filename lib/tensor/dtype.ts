// Element types and devices. Storage elements are 4 bytes for both dtypes.
export type DType = 'float32' | 'int32';
export type Device = 'cpu' | 'cuda';

export const BYTES_PER_ELEMENT = 4;

export function deviceCode(d: Device): number {
  return d === 'cpu' ? 0 : 1;
}

export function parseDevice(s: string): Device {
  if (s === 'cpu' || s === 'cuda') return s;
  throw new RangeError(`dd2: unknown device '${s}' (expected 'cpu' or 'cuda')`);
}
