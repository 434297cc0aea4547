# PyTorch peer for bench/gpu-gemm.ts: times torch.matmul on the same shapes and precisions and prints
# one JSON object per line: {"shape", "mode", "ms", "tflops"}. Usage: python3 bench/torch/gemm.py [reps]
import json
import sys

import torch

SHAPES = [("4096^3", 4096, 4096, 4096), ("65536x768 @ 768x3072", 65536, 3072, 768)]


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    torch.manual_seed(0)
    for name, M, N, K in SHAPES:
        for mode in ("fp32", "tf32", "bf16"):
            dtype = torch.bfloat16 if mode == "bf16" else torch.float32
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            a = torch.rand(M, K, device="cuda", dtype=dtype)
            b = torch.rand(K, N, device="cuda", dtype=dtype)
            ms = timed(lambda: torch.matmul(a, b), reps)
            print(json.dumps({"shape": name, "mode": mode, "ms": ms, "tflops": 2 * M * N * K / ms / 1e9}), flush=True)
            del a, b
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}), flush=True)


if __name__ == "__main__":
    main()
