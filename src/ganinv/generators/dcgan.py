"""DCGAN (Radford et al. 2016): z-space generator and the BatchNorm discriminator.

The discriminator is also used to train the StyleGAN2 model here (on 4,000 digits a
BatchNorm discriminator kept every class alive where StyleGAN2's residual one collapsed),
and later serves as a feature loss through :meth:`DCGANDiscriminator.features`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import Generator, LatentSpace, check_c_dim, check_resolution


class DCGANGenerator(Generator):
    """z ``[z_dim]`` → image ``[C, R, R]`` via transposed convolutions, BatchNorm and ReLU; tanh output.

    Args:
        resolution: output size, a power of two ≥ 8.
        z_dim: latent size.
        width: channels of the last hidden layer; doubled at every coarser scale.
        img_channels: output channels.
    """

    arch = "dcgan"

    def __init__(self, resolution: int = 32, z_dim: int = 64, width: int = 64, img_channels: int = 1) -> None:
        super().__init__()
        check_resolution(resolution)
        self.resolution, self.channels = resolution, img_channels
        self.image_shape = (img_channels, resolution, resolution)
        self.output_range = (-1.0, 1.0)
        self.z_dim, self.width = z_dim, width
        n_up = int(math.log2(resolution)) - 2  # 4 → resolution
        ch = width * 2 ** (n_up - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch),
                                   nn.ReLU(True)]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        return {"z": LatentSpace("z", (self.z_dim,), "input noise, standard normal")}

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "resolution": self.resolution, "z_dim": self.z_dim, "width": self.width,
                "img_channels": self.channels}

    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        return self.net(latent.view(latent.shape[0], self.z_dim, 1, 1))

    def feature_layers(self) -> list[str]:
        n_up = int(math.log2(self.resolution)) - 2
        return [f"{4 * 2 ** k}x{4 * 2 ** k}" for k in range(n_up)]

    def render_head(self, latent: Tensor, space: str, layer: int) -> list[Tensor]:
        """z → the activations after the ``layer``-th transposed-conv block (BatchNorm + ReLU)."""
        self.check_feature_layer(layer)
        return [self.net[:3 * layer](latent.view(latent.shape[0], self.z_dim, 1, 1))]

    def render_tail(self, state: list[Tensor], tail: Tensor | None, layer: int) -> Tensor:
        self.check_feature_layer(layer)
        return self.net[3 * layer:](state[0])

    def forward(self, z: Tensor) -> Tensor:
        """Training-style call: z ``[B, z_dim]`` → native image in [-1, 1]."""
        return self._native(z, "z", None)


class MinibatchStd(nn.Module):
    """Append the mean standard deviation of features across groups of ``group`` samples as one channel.

    StyleGAN's remedy for mode collapse: it lets the discriminator see how diverse a batch is.
    """

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = min(self.group, b)
        while b % g:
            g -= 1
        y = x.view(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [b / g]
        y = y.repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([x, y], dim=1)


class BlockDiscriminator(nn.Module):
    """Shared trunk of the discriminators: an optional ``entry`` layer, then ``blocks``, then minibatch-stddev.

    Subclasses set ``blocks`` (a ModuleList) and ``mbstd`` (a :class:`MinibatchStd` or None), and override
    :meth:`entry` when a layer comes before the blocks (its activation is then the first feature).
    """

    blocks: nn.ModuleList
    mbstd: MinibatchStd | None
    c_dim: int = 0

    def entry(self, x: Tensor) -> Tensor | None:
        """The layer before the blocks; None when there is none."""
        return None

    def features(self, x: Tensor) -> list[Tensor]:
        """Activations after the entry layer (if any) and every block, coarsest last (for feature losses)."""
        first = self.entry(x)
        feats = [] if first is None else [first]
        x = x if first is None else first
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def trunk(self, x: Tensor) -> Tensor:
        """The last block's activation, with the minibatch-stddev channel appended when enabled."""
        h = self.features(x)[-1]
        return self.mbstd(h) if self.mbstd is not None else h

    def logits(self, head: Tensor, c: Tensor | None) -> Tensor:
        """One logit per image from the head's output ``head`` ``[B, 1]`` (unconditional) or ``[B, cmap]``.

        A class-conditional discriminator (``c_dim > 0``) is a projection discriminator (Miyato & Koyama 2018,
        as NVIDIA's conditional ones): the logit is ``⟨head, e(c)⟩ / √cmap``, where ``e`` embeds the class ``c``
        ``[B or 1, c_dim]`` (one-hot rows) linearly and scales the embedding to unit mean square."""
        if self.c_dim == 0:
            if c is not None:
                raise InputError("this discriminator is unconditional (it has no classes), so it takes no class")
            return head.flatten()
        if not isinstance(c, Tensor) or c.dim() != 2 or c.shape[1] != self.c_dim or c.shape[0] not in (1, len(head)):
            got = list(c.shape) if isinstance(c, Tensor) else type(c).__name__
            raise InputError(f"this discriminator is class-conditional: give a class [B or 1, {self.c_dim}], got {got}")
        e = self.embed(c.to(head.device, head.dtype))  # subclasses with c_dim > 0 own an ``embed`` layer
        e = e * torch.rsqrt(e.square().mean(dim=1, keepdim=True) + 1e-8)
        return (head.flatten(1) * e).sum(1) / math.sqrt(head[0].numel())


class DCGANDiscriminator(BlockDiscriminator):
    """Strided convs + LeakyReLU (BatchNorm optional) → one logit per image.

    Input ``[B, C, R, R]`` in [-1, 1] (and the class ``c`` ``[B or 1, c_dim]`` of a conditional one);
    output ``[B]`` logits.

    Args:
        norm: ``"batch"`` (DCGAN) or ``"none"``.
        mbstd_group: > 0 adds a minibatch-standard-deviation channel before the head.
        c_dim: classes of a class-conditional discriminator (0: unconditional); the head then gives one
            feature per channel of the last block, projected on the class embedding (:meth:`logits`).
    """

    arch = "dcgan-d"

    def __init__(self, resolution: int = 32, width: int = 64, img_channels: int = 1, norm: str = "batch",
                 mbstd_group: int = 0, c_dim: int = 0) -> None:
        super().__init__()
        check_resolution(resolution)
        if norm not in ("batch", "none"):
            raise InputError(f"norm must be 'batch' or 'none', got {norm!r}")
        self.resolution, self.width, self.img_channels = resolution, width, img_channels
        self.norm, self.mbstd_group, self.c_dim = norm, mbstd_group, check_c_dim(c_dim)
        n_down = int(math.log2(resolution)) - 2
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(img_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True))]
        ch = width
        for _ in range(n_down - 1):
            layers: list[nn.Module] = [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm != "batch")]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(ch * 2))
            blocks.append(nn.Sequential(*layers, nn.LeakyReLU(0.2, True)))
            ch *= 2
        self.blocks = nn.ModuleList(blocks)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group > 0 else None
        self.head = nn.Conv2d(ch + (1 if mbstd_group > 0 else 0), ch if self.c_dim else 1, 4, 1, 0)
        self.embed = nn.Linear(self.c_dim, ch) if self.c_dim else None

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "resolution": self.resolution, "width": self.width,
                "img_channels": self.img_channels, "norm": self.norm, "mbstd_group": self.mbstd_group,
                **({"c_dim": self.c_dim} if self.c_dim else {})}

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.logits(self.head(self.trunk(x)), c)
