#!/usr/bin/env python3
"""PyTorch reference for dd2's FID InceptionV3 (lib/metrics/inception.ts); checked by bench/inception-check.ts.

Defines pytorch-fid's FID variant of InceptionV3 in plain torch (no torchvision): torchvision Inception3 blocks
with BasicConv2d = conv (no bias) -> BN (eps 1e-3) -> ReLU; Mixed_5b/5c/5d (FIDInceptionA), 6b-6e
(FIDInceptionC) and 7b (FIDInceptionE_1) pool with avg_pool2d(3, 1, 1, count_include_pad=False), Mixed_7c
(FIDInceptionE_2) with max_pool2d(3, 1, 1); Mixed_6a / 7a are torchvision's InceptionB / InceptionD; a
1008-way fc. Module attribute names follow torchvision, so state_dict() keys are pytorch-fid's
(Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.running_var, fc.weight, ...).

It initialises random weights from a fixed seed (BN running statistics random, variances positive), builds a
fixed batch of 4 RGB images 3 x 64 x 48 in [0, 1], and writes to --out:
  weights.safetensors    the state dict (float32, pytorch-fid key names; num_batches_tracked left out)
  reference.safetensors  images (4, 3, 64, 48); pool (4, 2048) and logits (4, 1008) for the pytorch-fid
                         path (F.interpolate bilinear, align_corners=False, to 299, then 2x - 1); pool_tf1 for
                         the torch-fidelity path (TF1 bilinear, half_pixel_centers=False, then (255x - 128) / 128);
                         logits are unbiased (pool @ fc.weight.T).
The network runs in float64 on the CPU by default (--dtype float32 --device cuda for PyTorch's float32 numbers),
so the reference is free of TF32 and accumulation-order effects.
Usage: python3 bench/torch/inception_ref.py --out /tmp/incv3 [--seed 0] [--dtype float64|float32] [--device cpu|cuda]
"""
import argparse
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg_pool_fid(x):
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(avg_pool_fid(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(avg_pool_fid(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """pool='avg': FIDInceptionE_1 (Mixed_7b); pool='max': FIDInceptionE_2 (Mixed_7c)."""

    def __init__(self, cin, pool):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        u = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(u), self.branch3x3dbl_3b(u)], 1)
        if self.pool == "avg":
            p = avg_pool_fid(x)
        else:
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([b1, b3, bd, self.branch_pool(p)], 1)


class FIDInceptionV3(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, "avg")
        self.Mixed_7c = FIDInceptionE(2048, "max")
        self.fc = nn.Linear(2048, 1008)

    def features(self, x):
        """Network input (B, 3, 299, 299) -> pool_3 (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def resize_tf1(x, size):
    """TF1 resize_bilinear(align_corners=False, half_pixel_centers=False): src = dst * in / out, written out."""
    def taps(n_in, n_out):
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, (src - i0).to(x.dtype).to(x.device)
    h0, h1, lh = taps(x.shape[2], size)
    w0, w1, lw = taps(x.shape[3], size)
    top = x[:, :, h0, :] * (1 - lh)[None, None, :, None] + x[:, :, h1, :] * lh[None, None, :, None]
    return top[:, :, :, w0] * (1 - lw) + top[:, :, :, w1] * lw


def randomize(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.rand(m.bias.shape, generator=g) - 0.1)
                m.running_mean.copy_(0.2 * torch.rand(m.running_mean.shape, generator=g) - 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(1.0 / 2048))
                m.bias.copy_(0.2 * torch.rand(m.bias.shape, generator=g) - 0.1)


def write_safetensors(path, tensors):
    """Minimal safetensors writer: 8-byte little-endian header length, JSON header, float32 C-order data."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32

    net = FIDInceptionV3().eval()
    randomize(net, args.seed)
    state = {k: v for k, v in net.state_dict().items() if v.is_floating_point()}
    write_safetensors(os.path.join(args.out, "weights.safetensors"), state)

    g = torch.Generator().manual_seed(args.seed + 1)
    images = torch.rand((4, 3, 64, 48), generator=g)        # float32 in [0, 1], as ToTensor() gives
    net = net.to(args.device, dtype)
    x = images.to(args.device, dtype)
    with torch.no_grad():
        inp = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        pool = net.features(inp)
        logits = pool @ net.fc.weight.T                      # unbiased logits
        inp_tf = (resize_tf1(x, 299) * 255 - 128) / 128
        pool_tf1 = net.features(inp_tf)
    write_safetensors(os.path.join(args.out, "reference.safetensors"),
                      {"images": images, "pool": pool, "logits": logits, "pool_tf1": pool_tf1})
    print(json.dumps({"out": args.out, "dtype": args.dtype, "device": args.device, "tensors": len(state),
                      "max_abs_pool": float(pool.abs().max()), "max_abs_logits": float(logits.abs().max())}))


if __name__ == "__main__":
    main()
