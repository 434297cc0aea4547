// GPU smoke test (npm run test:gpu, on a machine with an NVIDIA GPU): the addon finds the device,
// tensors round-trip host -> cuda -> host, device memory is accounted and released, and an op that
// has no CUDA kernel yet fails with a clear "not available on cuda" error.
import t from 'tap';
import { native } from '../../lib/tensor/native.js';
import { tensor, toDevice } from '../../lib/tensor/create.js';
import { memory, tidy } from '../../lib/tensor/engine.js';
import { check } from '../../lib/tensor/kernel.js';

const info = native.build_info().cuda;
const skip = !info.compiled ? 'addon built without CUDA' : info.devices === 0 ? `no GPU: ${info.error}` : false;

t.test('cuda storage', { skip }, async (t) => {
  t.comment(`device: ${info.name}, compute ${info.computeCapability}, runtime ${info.runtimeVersion}, driver ${info.driverVersion}`);
  const base = memory();
  tidy(() => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5 - 7);
    const x = tensor(data, [10, 100], { device: 'cpu' });
    const g = toDevice(x, 'cuda');
    t.equal(g.device, 'cuda');
    t.equal(memory().cuda.bytes - base.cuda.bytes, 4000, 'device bytes accounted');
    const back = toDevice(g, 'cpu');
    t.equal(back.device, 'cpu');
    t.same(Array.from(back.toFloat32Array()), Array.from(data), 'host -> cuda -> host is exact');
    t.same(Array.from(g.toFloat32Array()), Array.from(data), 'reading a cuda tensor directly');
    const missing = native.kernel_names().find((k) => !native.supports(k, 1));
    if (missing) t.throws(() => check('probe', [missing], g), new RegExp(`probe is not available on cuda \\(kernel ${missing}\\)`), `missing CUDA kernel (${missing}): clear error`);
    else t.pass('every kernel has a CUDA implementation');
  });
  t.equal(memory().cuda.bytes, base.cuda.bytes, 'device memory released by tidy');
  t.equal(memory().cuda.live, base.cuda.live, 'no device storages leaked');
});
