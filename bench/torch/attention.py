#!/usr/bin/env python3
"""PyTorch reference timings for bench/gpu-attention.ts (not a test).

Times torch.nn.functional.scaled_dot_product_attention in bf16 on the GPU, forward and forward+backward,
with every backend that torch.nn.attention.sdpa_kernel offers (cuDNN, flash, memory-efficient, math),
one at a time. Letters: B batch, H heads, T tokens, D head dim. Masks: "causal" uses is_causal=True;
"levels" (VAR block-causal: key j visible to query i iff level[j] <= level[i]) passes a boolean
attn_mask, which only some backends accept (the others report their error).
Usage: python3 bench/torch/attention.py '{"shapes": [{"name", "B", "H", "T", "D", "mask", "levels"?}],
"reps": 20}'. Prints one JSON object on the last line of stdout.
"""
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = ["CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH"]


def median_ms(fn, reps, inner):
    """Median over `reps` of the mean time of `inner` back-to-back calls, after warm-up (CUDA events)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    times.sort()
    return times[len(times) // 2]


def run_shape(sh, reps):
    B, H, T, D = sh["B"], sh["H"], sh["T"], sh["D"]
    gen = torch.Generator(device="cuda").manual_seed(0)
    mk = lambda: torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    q, k, v, dout = mk(), mk(), mk(), mk()
    for x in (q, k, v):
        x.requires_grad_(True)
    kwargs = {}
    if sh["mask"] == "causal":
        kwargs["is_causal"] = True
    else:
        lv = torch.tensor(sh["levels"], device="cuda")
        kwargs["attn_mask"] = lv[None, :] <= lv[:, None]   # [i, j] = key j visible to query i
    rows = []
    for name in BACKENDS:
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        row = {"shape": sh["name"], "backend": name}
        try:
            with sdpa_kernel(backend):
                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, **kwargs)

                def fwd_bwd():
                    out = F.scaled_dot_product_attention(q, k, v, **kwargs)
                    torch.autograd.grad(out, (q, k, v), dout)

                slow = name == "MATH"
                row["fwd_ms"] = median_ms(fwd, 3 if slow else reps, 1 if slow else 5)
                row["fwdbwd_ms"] = median_ms(fwd_bwd, 3 if slow else reps, 1 if slow else 5)
        except Exception as e:  # a backend that rejects this shape or mask
            row["error"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        rows.append(row)
        torch.cuda.empty_cache()
    return rows


def main():
    cfg = json.loads(sys.argv[1])
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "results": []}
    for sh in cfg["shapes"]:
        out["results"].extend(run_shape(sh, cfg.get("reps", 20)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
