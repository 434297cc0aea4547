#!/usr/bin/env python3
"""Converts pytorch-fid's InceptionV3 weights (.pth) to a safetensors file for dd2 (lib/metrics/inception.ts).

Input: pt_inception-2015-12-05-6726825d.pth, the TF 2015-12-05 Inception weights converted to PyTorch and
published by pytorch-fid (mseitzer) as a release asset. It is a plain state dict of torchvision Inception3
names (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_var, Mixed_5b.branch1x1.conv.weight, ..., fc.weight,
fc.bias). Output: the same names and shapes as float32 safetensors; integer buffers (num_batches_tracked) and
AuxLogits.* are left out. Uses the safetensors package when installed, else writes the format directly
(8-byte little-endian header length, JSON header, raw little-endian data).
Usage: python3 scripts/convert-inception.py pt_inception-2015-12-05-6726825d.pth inception-2015-12-05.safetensors
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import torch

# A few keys whose shapes pin down the FID variant (1008 classes, FIDInceptionA pool branch, Mixed_7c input).
EXPECTED = {
    "Conv2d_1a_3x3.conv.weight": [32, 3, 3, 3],
    "Mixed_5b.branch_pool.conv.weight": [32, 192, 1, 1],
    "Mixed_6b.branch7x7_2.conv.weight": [128, 128, 1, 7],
    "Mixed_7c.branch_pool.conv.weight": [192, 2048, 1, 1],
    "fc.weight": [1008, 2048],
}


def write_safetensors(path, tensors, metadata):
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        data = tensors[name].contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth", help="pt_inception-2015-12-05-6726825d.pth")
    ap.add_argument("out", help="output .safetensors")
    args = ap.parse_args()

    with open(args.pth, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    obj = torch.load(args.pth, map_location="cpu")
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        sys.exit(f"convert-inception: {args.pth} does not hold a state dict (got {type(obj).__name__})")
    tensors = {k: v.detach().to(torch.float32) for k, v in state.items()
               if torch.is_tensor(v) and v.is_floating_point() and not k.startswith("AuxLogits.")}
    for key, shape in EXPECTED.items():
        if key not in tensors:
            sys.exit(f"convert-inception: {args.pth} has no '{key}'; is this pytorch-fid's FID Inception checkpoint?")
        if list(tensors[key].shape) != shape:
            sys.exit(f"convert-inception: '{key}' has shape {list(tensors[key].shape)}, expected {shape}")
    metadata = {"source": os.path.basename(args.pth), "source_sha256": sha, "format": "pytorch-fid FID InceptionV3"}
    tmp = args.out + ".tmp"
    try:
        from safetensors.torch import save_file
        save_file(tensors, tmp, metadata=metadata)
    except ImportError:
        write_safetensors(tmp, tensors, metadata)
    os.replace(tmp, args.out)
    skipped = sorted(set(state) - set(tensors))
    print(f"wrote {args.out}: {len(tensors)} tensors; skipped {len(skipped)} "
          f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}); source sha256 {sha}")


if __name__ == "__main__":
    main()
