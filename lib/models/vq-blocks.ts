// Convolutional building blocks of the VQ tokenizer (follows LlamaGen tokenizer/tokenizer_image/vq_model.py,
// without attention): Conv2d, a pre-norm ResNet block (GroupNorm, SiLU, conv 3x3, twice, plus a residual
// with a 1x1 "nin_shortcut" when the width changes), stride-2 conv downsampling and nearest x2 upsampling
// followed by a conv. Layout NCHW; letters: N batch, C channels, H/W height/width. Parameter names follow
// LlamaGen so state dicts read alike.
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import { add, silu } from '../tensor/ops/elementwise.js';
import { conv2d, upsampleNearest } from '../tensor/ops/conv.js';
import { Module } from '../nn/module.js';
import { GroupNorm } from '../nn/layers.js';
import { fanInUniform } from '../nn/init.js';

/** Conv2d with PyTorch's layout and default init: weight (Cout, Cin, K, K) and bias ~ U(±1/sqrt(Cin·K·K)). */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly cin: number, readonly cout: number, readonly kernel: number, gen: Generator,
              readonly stride = 1, readonly padding = 0) {
    super();
    const fanIn = cin * kernel * kernel;
    this.weight = this.registerParameter('weight', fanInUniform([cout, cin, kernel, kernel], fanIn, gen));
    this.bias = this.registerParameter('bias', fanInUniform([cout], fanIn, gen));
  }

  /** x (N, Cin, H, W) -> (N, Cout, OH, OW) */
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

/** The GroupNorm group count used for `channels`: `groups` if it divides them, else the largest divisor below. */
export function groupsFor(channels: number, groups: number): number {
  let g = Math.min(groups, channels);
  while (channels % g !== 0) g--;
  return g;
}

/** x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with x mapped by a 1x1 conv when Cin != Cout. */
export class ResnetBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly ninShortcut: Conv2d | null;

  constructor(readonly cin: number, readonly cout: number, groups: number, gen: Generator) {
    super();
    this.norm1 = this.registerModule('norm1', new GroupNorm(groupsFor(cin, groups), cin));
    this.conv1 = this.registerModule('conv1', new Conv2d(cin, cout, 3, gen, 1, 1));
    this.norm2 = this.registerModule('norm2', new GroupNorm(groupsFor(cout, groups), cout));
    this.conv2 = this.registerModule('conv2', new Conv2d(cout, cout, 3, gen, 1, 1));
    this.ninShortcut = cin === cout ? null : this.registerModule('nin_shortcut', new Conv2d(cin, cout, 1, gen));
  }

  /** x (N, Cin, H, W) -> (N, Cout, H, W) */
  forward(x: Tensor): Tensor {
    const h1 = this.conv1.forward(silu(this.norm1.forward(x)));
    const h2 = this.conv2.forward(silu(this.norm2.forward(h1)));
    return add(this.ninShortcut ? this.ninShortcut.forward(x) : x, h2);
  }
}

/** Halves H and W with a 3x3 stride-2 conv, padding 1 (28 -> 14 -> 7); may change the width (LlamaGen keeps
 *  it and widens in the next ResNet block, which here would cost a 1x1 shortcut conv). */
export class Downsample extends Module {
  readonly conv: Conv2d;

  constructor(cin: number, cout: number, gen: Generator) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(cin, cout, 3, gen, 2, 1));
  }

  /** x (N, Cin, H, W) -> (N, Cout, ceil(H/2), ceil(W/2)) */
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** Doubles H and W: nearest-neighbour upsampling then a 3x3 conv, which may narrow the width (LlamaGen keeps
 *  it; narrowing here makes the conv at the higher resolution cheaper). */
export class Upsample extends Module {
  readonly conv: Conv2d;

  constructor(cin: number, cout: number, gen: Generator) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(cin, cout, 3, gen, 1, 1));
  }

  /** x (N, Cin, H, W) -> (N, Cout, 2H, 2W) */
  forward(x: Tensor): Tensor {
    return this.conv.forward(upsampleNearest(x, 2));
  }
}
