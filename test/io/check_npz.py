#!/usr/bin/env python3
# NumPy interop check for dd2's .npz files (lib/io/npz.ts); needs only numpy.
#   python3 test/io/check_npz.py check FILE.npz   # FILE written by dd2 (test/io/npz.test.ts writes one)
#   python3 test/io/check_npz.py write FILE.npz [--compressed]   # a file for dd2 to read back
# The expected arrays here and in test/io/npz.test.ts (expected()) must stay the same.
import sys
import numpy as np


def expected():
    return {
        'u8': (np.arange(24) * 7 % 256).astype(np.uint8).reshape(2, 3, 4),
        'i4': np.array([-2**31, -1, 0, 1, 2**31 - 1], dtype=np.int32),
        'f4': np.array([0.5, -1.25, 3.0e38, 1.4e-45, -np.inf, 7.0], dtype=np.float32).reshape(3, 2),
        'f8': np.array(np.pi, dtype=np.float64),
        'empty': np.zeros((0, 3), dtype=np.float32),
    }


def check(path):
    with np.load(path) as z:
        got = {k: z[k] for k in z.files}
    want = expected()
    assert sorted(got) == sorted(want), f'names {sorted(got)} != {sorted(want)}'
    for k, w in want.items():
        g = got[k]
        assert g.dtype == w.dtype, f'{k}: dtype {g.dtype} != {w.dtype}'
        assert g.shape == w.shape, f'{k}: shape {g.shape} != {w.shape}'
        assert np.array_equal(g, w), f'{k}: values differ:\n{g}\n{w}'
    print(f'ok: numpy {np.__version__} read {path}: ' + ', '.join(f'{k} {got[k].dtype}{list(got[k].shape)}' for k in sorted(got)))


def write(path, compressed):
    arrays = expected()
    # forms dd2 converts on reading: int64, bool, Fortran order, big-endian, float16
    arrays['i8'] = np.array([1, -2, 3], dtype=np.int64)
    arrays['b1'] = np.array([True, False, True])
    arrays['fo'] = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    arrays['be'] = np.array([1, 256, -3], dtype='>i4')
    arrays['f2'] = np.array([0.5, -2.0, 65504.0], dtype=np.float16)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    print(f'ok: wrote {path}')


if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == 'check':
        check(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == 'write':
        write(sys.argv[2], '--compressed' in sys.argv[3:])
    else:
        sys.exit(__doc__ or 'usage: check_npz.py check FILE | write FILE [--compressed]')
