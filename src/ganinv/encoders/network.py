"""The feature-pyramid encoder: an image (and, for refinement, the current reconstruction) → a latent.

One network covers the three encoder families of the literature:

* **pSp** (Richardson et al. 2021): a convolutional backbone with a feature pyramid; coarse
  style vectors are read from the smallest feature map, medium ones from the middle and fine
  ones from the largest (after top-down merging, as in an FPN).
* **e4e** (Tov et al. 2021): the prediction is an *offset* from a start latent (``w_avg``), and
  the per-layer codes are ``w_i = w_0 + Δ_i`` — one base code plus progressive deltas whose norm
  a regulariser keeps small (:meth:`PyramidEncoder.delta_norm`), so the result stays near W.
* **ReStyle** (Alaluf et al. 2021): the input is the target image concatenated with the
  current reconstruction, and the output is a residual added to the current latent; running
  the network N times refines the inversion. Pass 0 starts from the start latent and its
  (cached) rendering, so a single pass is an ordinary encoder.

Shapes: images ``[B, C, H, W]`` in [0, 1]; latents ``[B, num_ws, dim]`` for W+ generators and
``[B, dim]`` for z generators (``latent_shape`` is ``(num_ws, dim)`` or ``(dim,)``).

The network's own input size ``R`` (``resolution``) need not be the generator's: images of any other size
(the generator's renderings and targets, e.g. 1024 px for a 256 px encoder) are resized to ``R × R`` first
(:func:`fit_input`: antialiased bilinear, in float32), so the encoder's depth and cost follow ``R`` alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _ResidualDown(nn.Module):
    """Residual block halving the resolution: conv3x3(s2) → LeakyReLU → conv3x3, plus a 1x1 s2 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # a 1x1 stride-2 conv, written as "every other pixel, then 1x1": the same function, but oneDNN's backward
        # of a channels-last strided 1x1 conv with < 8 input channels corrupts memory (torch 2.14, `--width 4`)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = self.conv2(h)
        return F.leaky_relu(h + self.skip(x[:, :, ::2, ::2]), 0.2)


class _StyleHead(nn.Module):
    """pSp's map-to-style block: strided 3x3 convs down to ``≤ 4×4``, then a linear layer to ``k`` codes."""

    def __init__(self, channels: int, size: int, k: int, dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        while size > 4:
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            size //= 2
        self.convs = nn.Sequential(*layers)
        self.k, self.dim = k, dim
        self.linear = nn.Linear(channels * size * size, k * dim)
        nn.init.zeros_(self.linear.bias)
        self.linear.weight.data.mul_(0.25)  # start close to "no change" (a residual of ~0)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).flatten(1)).view(-1, self.k, self.dim)


def fit_input(x: Tensor, size: int) -> Tensor:
    """``x`` ``[B, C, H, W]`` resized to ``[B, C, size, size]`` (antialiased bilinear, float32; values keep their
    range, e.g. [0, 1]); returned as it is (cast to float32) when it already has that size."""
    x = x.float()
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _group_sizes(num_ws: int, levels: int) -> list[int]:
    """Split ``num_ws`` codes into coarse / medium / fine groups (one per pyramid level; thirds)."""
    if num_ws < levels or levels < 3:
        return [num_ws]
    third = round(num_ws / 3)
    return [third, third, num_ws - 2 * third]


class PyramidEncoder(nn.Module):
    """Feature-pyramid encoder with e4e offsets/progressive deltas and ReStyle refinement input.

    Args:
        resolution: input size R (a power of two ≥ 8); images of another size are resized to it
            (:func:`fit_input`).
        img_channels: C of the images.
        latent_shape: ``(num_ws, dim)`` (W+) or ``(dim,)`` (z).
        width: channels of the first feature level (doubling per level, capped at ``max_width``).
        max_width: channel cap.
        iterative: ReStyle input (image ‖ current reconstruction, 2C channels); else pSp input (C).
        progressive: e4e codes ``w_i = w_0 + Δ_i`` (W+ only); else every code is predicted freely.
        latent_scale: the network's outputs are multiplied by this (the latent space's std), so
            its raw outputs are of order 1.

    The buffer ``start_latent`` (``[*latent_shape]``) is where pass 0 starts (``w_avg`` or 0).
    """

    arch = "pyramid-encoder"

    def __init__(self, resolution: int = 32, img_channels: int = 1, latent_shape: tuple[int, ...] = (8, 128),
                 width: int = 16, max_width: int = 96, iterative: bool = True, progressive: bool = True,
                 latent_scale: float = 1.0) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two ≥ 8, got {resolution}")
        latent_shape = tuple(int(v) for v in latent_shape)
        if len(latent_shape) not in (1, 2):
            raise ValueError(f"latent_shape must be (dim,) or (num_ws, dim), got {latent_shape}")
        self.resolution, self.img_channels = resolution, img_channels
        self.latent_shape = latent_shape
        self.width, self.max_width = width, max_width
        self.iterative, self.progressive = iterative, progressive and len(latent_shape) == 2
        self.latent_scale = float(latent_scale)
        num_ws, dim = (latent_shape if len(latent_shape) == 2 else (1, latent_shape[0]))
        self.num_ws, self.dim = num_ws, dim

        c_in = img_channels * (2 if iterative else 1)
        self.stem = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.LeakyReLU(0.2))
        levels = int(math.log2(resolution)) - 2  # down to 4×4
        chans, c = [], width
        self.downs = nn.ModuleList()
        for _ in range(levels):
            c_next = min(c * 2, max_width)
            self.downs.append(_ResidualDown(c, c_next))
            chans.append(c_next)
            c = c_next
        # feature pyramid over (up to) the three smallest levels, merged top-down
        self.pyramid = min(3, levels)
        pyr_chans = chans[-self.pyramid:]
        fpn = pyr_chans[-1]
        self.fpn_channels = fpn
        self.lateral = nn.ModuleList(nn.Conv2d(ch, fpn, 1) for ch in pyr_chans[:-1])
        sizes = [resolution >> (levels - self.pyramid + 1 + i) for i in range(self.pyramid)]  # large → small
        groups = _group_sizes(num_ws, self.pyramid)
        self.groups = groups
        # group 0 (coarse) reads the smallest map, the last group (fine) the largest
        self.heads = nn.ModuleList(_StyleHead(fpn, sizes[self.pyramid - 1 - g], k, dim) for g, k in enumerate(groups))
        self.register_buffer("start_latent", torch.zeros(latent_shape))
        # channels-last convolutions run ~2x faster on CPU (oneDNN); loading weights keeps the layout
        self.to(memory_format=torch.channels_last)

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "resolution": self.resolution, "img_channels": self.img_channels,
                "latent_shape": list(self.latent_shape), "width": self.width, "max_width": self.max_width,
                "iterative": self.iterative, "progressive": self.progressive, "latent_scale": self.latent_scale}

    def _features(self, x: Tensor) -> list[Tensor]:
        h = self.stem(x)
        feats = []
        for down in self.downs:
            h = down(h)
            feats.append(h)
        pyr = feats[-self.pyramid:]  # large → small
        merged = [pyr[-1]]
        for i in range(self.pyramid - 2, -1, -1):
            up = F.interpolate(merged[0], scale_factor=2, mode="nearest")
            merged.insert(0, up + self.lateral[i](pyr[i]))
        return merged  # large → small, all with fpn channels

    def residual(self, image: Tensor, current_image: Tensor | None = None) -> Tensor:
        """The network's prediction (before adding to a latent): ``[B, *latent_shape]``.

        Args:
            image: targets ``[B, C, H, W]`` in [0, 1] (resized to ``R × R`` when ``H, W ≠ R``).
            current_image: the current reconstruction ``[B, C, H', W']`` in [0, 1] (required when iterative;
                resized likewise).
        """
        if image.dim() != 4 or image.shape[1] != self.img_channels:
            raise ValueError(f"this encoder takes [B, {self.img_channels}, H, W] images, got {tuple(image.shape)}")
        x = fit_input(image, self.resolution) * 2 - 1
        if self.iterative:
            if current_image is None:
                raise ValueError("this encoder is iterative: pass the current reconstruction too")
            x = torch.cat([x, fit_input(current_image, self.resolution) * 2 - 1], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)
        merged = self._features(x)
        codes = torch.cat([head(merged[len(merged) - 1 - g]) for g, head in enumerate(self.heads)], dim=1)
        if self.progressive:
            codes = torch.cat([codes[:, :1], codes[:, :1] + codes[:, 1:]], dim=1)
        codes = codes * self.latent_scale
        return codes.view(-1, *self.latent_shape)

    def forward(self, image: Tensor, current_image: Tensor | None = None,
                current_latent: Tensor | None = None) -> Tensor:
        """One pass: ``current_latent + residual(image, current_image)`` (start latent when None)."""
        base = self.start_latent if current_latent is None else current_latent
        return base + self.residual(image, current_image)

    def delta_norm(self, latent: Tensor) -> Tensor:
        """e4e's regulariser per sample ``[B]``: Σ_i ‖w_i − w_0‖² / latent_scale² (0 for z latents)."""
        if latent.dim() != 3:
            return latent.new_zeros(latent.shape[0])
        return (latent[:, 1:] - latent[:, :1]).square().sum(dim=(1, 2)) / self.latent_scale ** 2


__all__ = ["PyramidEncoder", "fit_input"]
