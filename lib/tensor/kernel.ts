// Checks before a kernel call: live inputs on one device, and a kernel that exists there.
// The capability table lives in the addon (`supports`); an op missing on a device fails here with
// the op's name rather than deep in native code.
import { native } from './native.js';
import { deviceCode, type Device } from './dtype.js';
import type { Tensor } from './tensor.js';

const cache = new Map<string, boolean>();

export function supports(kernel: string, device: Device): boolean {
  const key = `${kernel}@${device}`;
  let v = cache.get(key);
  if (v === undefined) {
    v = native.supports(kernel, deviceCode(device));
    cache.set(key, v);
  }
  return v;
}

/** Throws unless all tensors are live, share a device, and every named kernel exists there. */
export function check(op: string, kernels: readonly string[], ...ts: (Tensor | null | undefined)[]): Device {
  let dev: Device | null = null;
  for (const t of ts) {
    if (!t) continue;
    t.assertLive();
    if (dev && t.device !== dev) {
      throw new Error(`dd2: ${op}: inputs are on different devices (${dev} and ${t.device})`);
    }
    dev = t.device;
  }
  const d = dev ?? 'cpu';
  for (const k of kernels) {
    if (!supports(k, d)) throw new Error(`dd2: ${op} is not available on ${d} (kernel ${k})`);
  }
  return d;
}

export function expectDtype(op: string, t: Tensor, dtype: 'float32' | 'int32', what = 'input'): void {
  if (t.dtype !== dtype) throw new TypeError(`dd2: ${op}: ${what} must be ${dtype}, got ${t.describe()}`);
}
