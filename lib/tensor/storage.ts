// Reference-counted handle to native storage. Views share one Storage; the native memory is freed
// when the last tensor using it is disposed.
import { native } from './native.js';
import { deviceCode, type Device } from './dtype.js';

export class Storage {
  refs = 0;
  freed = false;
  private constructor(readonly id: number, readonly bytes: number, readonly device: Device) {}

  static alloc(device: Device, bytes: number, zero = false): Storage {
    return new Storage(native.storage_alloc(deviceCode(device), bytes, zero), bytes, device);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0 && !this.freed) {
      this.freed = true;
      native.storage_free(this.id);
    }
  }
}
