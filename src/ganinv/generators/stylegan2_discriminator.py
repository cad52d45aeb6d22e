"""StyleGAN2's residual discriminator (Karras et al. 2020, config E/F), pure PyTorch.

Equalised learning rate throughout (weights stored ~N(0, 1) and scaled by ``1/sqrt(fan_in)``
at run time), so one Adam learning rate moves every layer by the same *relative* amount —
the property a plain-``nn.Conv2d`` discriminator lacks at StyleGAN2's learning rate of 2e-3,
where its small weights change by several per cent per step and training oscillates.

Layout at resolution ``R`` (channels ``ch[r]`` per resolution ``r``)::

    x [B, C, R, R] ─ 1×1 conv (fromRGB) ─ ResBlock(R→R/2) ─ … ─ ResBlock(8→4)
      ─ minibatch-stddev (group G) ─ 3×3 conv ─ flatten ─ linear(ch·16 → ch) ─ linear(ch → 1)

A ResBlock is ``(conv3×3 → blur+conv3×3/2 ; skip: blur+conv1×1/2) / sqrt(2)``, activations
``lrelu(0.2)·sqrt(2)``. Input ``[B, C, R, R]`` in [-1, 1]; output ``[B]`` logits.
:meth:`features` returns each block's activations for feature-matching losses.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import check_c_dim, check_resolution
from ganinv.generators.dcgan import BlockDiscriminator, MinibatchStd
from ganinv.generators.stylegan2 import SQRT2, EqualLinear, FusedLeakyReLU, make_kernel, upfirdn2d


def blur(x: Tensor, kernel: Tensor, pad: tuple[int, int]) -> Tensor:
    """Pad by ``pad`` (before, after) and filter every channel of ``x`` ``[B, C, H, W]`` with ``kernel``
    (a separable, normalised 2-D FIR kernel such as :func:`make_kernel` ``([1, 3, 3, 1])``).

    On the CPU: the generator's :func:`upfirdn2d` (one depthwise convolution), whose R1 double backward
    oneDNN runs well. Elsewhere: the separable filter as weighted sums of shifted slices, so that R1's double backward
    involves no convolution of the blur at all. (On an H200, training with the blur as a depthwise
    convolution, and then as a single-channel convolution over the folded batch, both ran at ~2 s per
    iteration; the cause was not isolated there and this form has not been timed on a GPU yet.)
    Both forms compute the same filter.
    """
    if x.device.type == "cpu":
        return upfirdn2d(x, kernel, pad=pad)
    return blur_separable(F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), kernel)


def blur_separable(x: Tensor, kernel: Tensor) -> Tensor:
    """:func:`upfirdn2d`'s filtering of (already padded) ``x`` ('valid') for a rank-1 ``kernel``, as weighted
    sums of shifted slices."""
    kh, kw = kernel.shape
    col = kernel.sum(1)  # k = col ⊗ row / Σk for a rank-1 kernel
    row = kernel.sum(0) / col.sum()
    out_h, out_w = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    flt = sum(float(row[kw - 1 - j]) * x[:, :, :, j:j + out_w] for j in range(kw))
    return sum(float(col[kh - 1 - i]) * flt[:, :, i:i + out_h, :] for i in range(kh))


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: effective weight ``weight / sqrt(in·k·k)``; optional
    ×2 downsampling preceded by a ``[1, 3, 3, 1]`` blur (anti-aliasing, as StyleGAN2)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, downsample: bool = False, bias: bool = True,
                 activate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.downsample = downsample
        if downsample:
            self.register_buffer("blur_kernel", make_kernel([1, 3, 3, 1]))
            p = 4 - 2 + (kernel - 1)  # blur taps − factor + (kernel − 1): same-size filter before the stride
            self.blur_pad = ((p + 1) // 2, p // 2)
        self.pad = 0 if downsample else kernel // 2
        self.act = FusedLeakyReLU(out_ch) if activate else None
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias and not activate else None

    def forward(self, x: Tensor) -> Tensor:
        if self.downsample:
            x = blur(x, self.blur_kernel, self.blur_pad)
        x = F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=2 if self.downsample else 1,
                     padding=self.pad)
        return self.act(x) if self.act is not None else x


class ResBlock(nn.Module):
    """Residual ×½ block: ``(conv3×3 → conv3×3↓) + conv1×1↓(x)``, scaled by ``1/sqrt(2)``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, downsample=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class StyleGAN2Discriminator(BlockDiscriminator):
    """StyleGAN2's residual discriminator with equalised learning rate (see module docstring).

    Args:
        resolution: input size (power of two ≥ 8).
        channels: channels per resolution, ``{"32": 64, "16": 128, "8": 256, "4": 256}``; every
            resolution from ``resolution`` down to 4 must be present.
        img_channels: input channels.
        mbstd_group: minibatch-stddev group size (0 disables it).
        c_dim: classes of a class-conditional discriminator (0: unconditional): the last linear layer then
            gives ``ch[4]`` features, projected on the class embedding (NVIDIA's ``cmap``;
            :meth:`~ganinv.generators.dcgan.BlockDiscriminator.logits`).
    """

    arch = "stylegan2-d"

    def __init__(self, resolution: int = 32, channels: dict[str, int] | None = None, img_channels: int = 1,
                 mbstd_group: int = 4, c_dim: int = 0) -> None:
        super().__init__()
        check_resolution(resolution)
        if resolution < 8:
            raise InputError(f"the StyleGAN2 discriminator needs resolution ≥ 8, got {resolution}")
        needed = [2**i for i in range(int(math.log2(resolution)), 1, -1)]  # resolution, …, 8, 4
        channels = channels or {str(r): min(512, 2048 // r) for r in needed}
        ch = {int(k): int(v) for k, v in channels.items()}
        missing = [r for r in needed if r not in ch]
        if missing:
            raise InputError(f"discriminator channels lack resolution(s) {missing}; give one width per "
                             f"resolution from {resolution} down to 4")
        self.resolution, self.img_channels, self.mbstd_group = resolution, img_channels, mbstd_group
        self.c_dim = check_c_dim(c_dim)
        self.channels = {str(r): ch[r] for r in needed}
        self.from_rgb = EqualConv2d(img_channels, ch[resolution], 1)
        self.blocks = nn.ModuleList(ResBlock(ch[r], ch[r // 2]) for r in needed[:-1])
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group > 0 else None
        c4 = ch[4]
        self.final_conv = EqualConv2d(c4 + (1 if mbstd_group > 0 else 0), c4, 3)
        self.final_linear = EqualLinear(c4 * 16, c4, activation="fused_lrelu")
        self.head = EqualLinear(c4, c4 if self.c_dim else 1)
        self.embed = EqualLinear(self.c_dim, c4) if self.c_dim else None

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "resolution": self.resolution, "channels": dict(self.channels),
                "img_channels": self.img_channels, "mbstd_group": self.mbstd_group,
                **({"c_dim": self.c_dim} if self.c_dim else {})}

    def entry(self, x: Tensor) -> Tensor:
        """fromRGB: :meth:`features` reports it first, then every residual block (4×4 last)."""
        return self.from_rgb(x)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """``x`` ``[B, C, R, R]`` in [-1, 1] (and ``c`` ``[B or 1, c_dim]`` when conditional) → ``[B]`` logits."""
        h = self.final_conv(self.trunk(x))
        return self.logits(self.head(self.final_linear(h.flatten(1))), c)
