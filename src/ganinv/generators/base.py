"""The generator abstraction every inversion method talks to.

A :class:`Generator` is an ``nn.Module`` that renders images from named latent spaces.
Images crossing its public boundary are float tensors ``[B, C, H, W]`` whose nominal
range is ``[0, 1]`` (the adapter rescales from the network's native range; values are
*not* clamped by :meth:`Generator.synthesize`, so gradients stay alive for inversion —
clamp with :meth:`Generator.to_display` or ``.clamp(0, 1)`` before showing or saving).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import InputError


@dataclass(frozen=True)
class LatentSpace:
    """One named latent space of a generator.

    Attributes:
        name: ``"z"``, ``"w"`` or ``"w+"``.
        shape: per-sample shape, e.g. ``(512,)`` for z/w or ``(num_ws, 512)`` for w+.
        description: one line for people.
    """

    name: str
    shape: tuple[int, ...]
    description: str = ""

    def check(self, latent: Tensor) -> Tensor:
        """Validate that ``latent`` is ``[B, *shape]`` and finite; return it unchanged."""
        if not isinstance(latent, Tensor):
            raise InputError(f"latent for space {self.name!r} must be a torch.Tensor, got {type(latent).__name__}")
        if tuple(latent.shape[1:]) != self.shape or latent.dim() != len(self.shape) + 1:
            raise InputError(
                f"latent for space {self.name!r} must have shape [B, {', '.join(map(str, self.shape))}], "
                f"got {list(latent.shape)}"
            )
        if not torch.isfinite(latent).all():
            raise InputError(f"latent for space {self.name!r} contains NaN or Inf")
        return latent


class Generator(nn.Module):
    """Abstract generator: named latent spaces in, ``[B, C, H, W]`` images in [0, 1] out.

    Subclasses set ``resolution``, ``channels``, ``output_range`` and implement
    :meth:`_latent_spaces`, :meth:`_native` and (where they have more than one space)
    :meth:`convert` / :meth:`mean_latent`.
    """

    #: Short architecture name stored in configs (``"stylegan2"``, ``"dcgan"``, ``"wrapped"``).
    arch: str = "generator"

    def __init__(self) -> None:
        super().__init__()
        self.resolution: int = 0
        self.channels: int = 0
        self.image_shape: tuple[int, int, int] = (0, 0, 0)
        self.output_range: tuple[float, float] = (-1.0, 1.0)

    # ----- description -------------------------------------------------------------
    @property
    def latent_spaces(self) -> dict[str, LatentSpace]:
        """Named latent spaces, in mapping order (``z`` first)."""
        return self._latent_spaces()

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        raise NotImplementedError

    @property
    def noise_shapes(self) -> list[tuple[int, ...]]:
        """Per-layer noise-map shapes ``(1, 1, H_i, W_i)``; empty when the architecture has none."""
        return []

    @property
    def default_space(self) -> str:
        """The space inversion uses unless told otherwise (``w+`` where it exists, else ``z``)."""
        spaces = self.latent_spaces
        return "w+" if "w+" in spaces else next(iter(spaces))

    def space(self, name: str) -> LatentSpace:
        """Return the :class:`LatentSpace` called ``name`` or raise a clear error."""
        spaces = self.latent_spaces
        if name not in spaces:
            raise InputError(f"{self.arch} generator has no latent space {name!r}; it has: {', '.join(spaces)}")
        return spaces[name]

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ----- rendering ---------------------------------------------------------------
    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        """Render ``latent`` in ``space``; returns the network's native output ``[B, C, H, W]``."""
        raise NotImplementedError

    def synthesize(self, latent: Tensor, space: str | None = None, noise: list[Tensor] | None = None) -> Tensor:
        """Render images from latents.

        Args:
            latent: ``[B, *space.shape]`` float tensor.
            space: latent space name; defaults to :attr:`default_space`.
            noise: optional per-layer noise maps (see :attr:`noise_shapes`), each
                ``[B or 1, 1, H_i, W_i]``; ``None`` uses the generator's stored constant noise.

        Returns:
            ``[B, C, H, W]`` images, nominal range [0, 1], unclamped.
        """
        space = space or self.default_space
        self.space(space).check(latent)
        if noise is not None:
            self.check_noise(noise, latent.shape[0])
        lo, hi = self.output_range
        out = self._native(latent, space, noise)
        return (out - lo) / (hi - lo)

    def check_noise(self, noise: Any, batch: int) -> list[Tensor]:
        """Validate per-layer noise maps: one per :attr:`noise_shapes` entry, ``[batch or 1, 1, H_i, W_i]``,
        finite. Returns them unchanged; raises :class:`InputError` otherwise."""
        shapes = self.noise_shapes
        if not isinstance(noise, list | tuple) or len(noise) != len(shapes):
            raise InputError(f"noise must be a list of {len(shapes)} noise maps for this {self.arch} generator, got "
                             f"{len(noise) if isinstance(noise, list | tuple) else type(noise).__name__}")
        for i, (m, want) in enumerate(zip(noise, shapes)):
            if not isinstance(m, Tensor) or m.dim() != 4 or m.shape[0] not in (1, batch) \
                    or tuple(m.shape[1:]) != tuple(want[1:]):
                got = list(m.shape) if isinstance(m, Tensor) else type(m).__name__
                raise InputError(f"noise map {i} must be [{batch} or 1, {', '.join(map(str, want[1:]))}], got {got}")
            if not torch.isfinite(m).all():
                raise InputError(f"noise map {i} contains NaN or Inf")
        return list(noise)

    @staticmethod
    def to_display(images: Tensor) -> Tensor:
        """Clamp images to [0, 1] for saving or showing."""
        return images.clamp(0.0, 1.0)

    # ----- latents -----------------------------------------------------------------
    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        """Map latents from ``src`` to ``dst`` along z → w → w+ (the only direction that exists)."""
        if src == dst:
            return latent
        raise InputError(f"{self.arch} generator cannot convert latents from {src!r} to {dst!r}")

    def mean_latent(self, space: str = "w") -> Tensor:
        """The mean latent of ``space``, shape ``[1, *shape]`` (zeros for a Gaussian z)."""
        spc = self.space(space)
        return torch.zeros((1, *spc.shape), device=self.device)

    def sample_latent(self, n: int, space: str = "z", *, seed: int | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` latents of ``space`` (z: standard normal; w/w+: mapped from z).

        Returns ``[n, *shape]`` on the generator's device. Deterministic for a seed.
        """
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        z_shape = self.space("z").shape if "z" in self.latent_spaces else self.space(self.default_space).shape
        z = torch.randn((n, *z_shape), generator=generator).to(self.device)
        if space == "z" or "z" not in self.latent_spaces:
            return z
        with torch.no_grad():
            return self.convert(z, "z", space)

    def truncate(self, latent: Tensor, psi: float, space: str = "w") -> Tensor:
        """Pull ``latent`` towards the mean: ``mean + psi * (latent - mean)``."""
        if psi == 1.0:
            return latent
        mean = self.mean_latent(space).to(latent)
        return mean + psi * (latent - mean)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, truncation: float = 1.0) -> Tensor:
        """Sample ``n`` images ``[n, C, H, W]`` in [0, 1] (clamped) from seed ``seed``."""
        spaces = self.latent_spaces
        space = "w" if "w" in spaces else next(iter(spaces))
        lat = self.sample_latent(n, space, seed=seed)
        if truncation != 1.0:
            lat = self.truncate(lat, truncation, space)
        return self.to_display(self.synthesize(lat, space))

    # ----- coarse renderings (coarse-to-fine inversion) ------------------------------
    def skip_resolutions(self) -> list[int]:
        """Resolutions below the output at which a partial synthesis is already an image (StyleGAN2's
        toRGB skip sum), so coarse-to-fine inversion can render only the blocks up to them; empty for
        generators whose image exists only at the end (DCGAN, wrapped callables)."""
        return []

    # ----- intermediate features (multi-code inversion) ------------------------------
    def feature_layers(self) -> list[str]:
        """Names of the layers where :meth:`render_head` can stop (index ``k`` ↔ name ``k - 1``),
        e.g. ``["4x4", "8x8", "16x16"]``; empty for generators that expose no features."""
        return []

    def default_feature_layer(self) -> int:
        """The composition layer used when none is chosen (mGANprior composes at a middle layer)."""
        layers = self.feature_layers()
        if not layers:
            raise InputError(f"the {self.arch} generator exposes no intermediate features; multi-code inversion "
                             f"needs a StyleGAN2, StyleGAN3 or DCGAN generator")
        return min(2, len(layers))

    def check_feature_layer(self, layer: int) -> int:
        layers = self.feature_layers()
        if not layers:
            self.default_feature_layer()  # raises the clear message
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= len(layers):
            named = ", ".join(f"{i + 1} ({n})" for i, n in enumerate(layers))
            raise InputError(f"composition layer must be one of {named}; got {layer!r}")
        return layer

    def tail_shape(self, layer: int) -> tuple[int, ...] | None:
        """Per-sample shape of the latent the layers after ``layer`` take (None: they take none)."""
        return None

    def render_head(self, latent: Tensor, space: str, layer: int) -> list[Tensor]:
        """Run the generator up to ``layer`` → its state, a list of ``[B, C_i, H_i, W_i]`` feature maps."""
        raise InputError(f"the {self.arch} generator exposes no intermediate features")

    def render_tail(self, state: list[Tensor], tail: Tensor | None, layer: int) -> Tensor:
        """Continue from a (possibly composed) ``state`` after ``layer`` → native image ``[B, C, H, W]``."""
        raise InputError(f"the {self.arch} generator exposes no intermediate features")

    # ----- config ------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (plus ``arch``)."""
        raise NotImplementedError


def check_resolution(resolution: int) -> int:
    """Validate a power-of-two resolution ≥ 4."""
    if resolution < 4 or 2 ** int(math.log2(resolution)) != resolution:
        raise InputError(f"resolution must be a power of two ≥ 4, got {resolution}")
    return resolution


# ----------------------------------------------------------------------------------
# Class-conditional mapping networks (c_dim > 0)
# ----------------------------------------------------------------------------------
def check_c_dim(c_dim: Any) -> int:
    """Validate a class count ``c_dim`` (0: unconditional) and return it as an int."""
    if isinstance(c_dim, bool) or not isinstance(c_dim, int) or c_dim < 0:
        raise InputError(f"c_dim (the number of classes) must be a whole number ≥ 0, got {c_dim!r}")
    return c_dim


def check_class_input(c_dim: int, c: Tensor | None, batch: int, arch: str = "generator") -> Tensor | None:
    """Validate the class input of a mapping network: ``None`` for an unconditional model; for a conditional
    one a finite float tensor ``[batch or 1, c_dim]`` (one-hot rows or probability vectors), returned expanded
    to ``[batch, c_dim]``. Raises :class:`InputError` with one sentence otherwise."""
    if c_dim == 0:
        if c is not None:
            raise InputError(f"this {arch} generator is unconditional (it has no classes), so it takes no class")
        return None
    if c is None:
        raise InputError(f"this {arch} generator is class-conditional ({c_dim} classes, 0…{c_dim - 1}): give a "
                         f"class (ganinv.generators.conditional.with_class, or --class K on the command line)")
    if not isinstance(c, Tensor) or c.dim() != 2 or c.shape[1] != c_dim or c.shape[0] not in (1, batch):
        got = list(c.shape) if isinstance(c, Tensor) else type(c).__name__
        raise InputError(f"the class input must be a [{batch} or 1, {c_dim}] tensor of class probabilities, got {got}")
    if not c.is_floating_point() or not torch.isfinite(c).all():
        raise InputError("the class input must be finite float class probabilities")
    return c.expand(batch, c_dim)


def random_classes(c_dim: int, n: int, generator: torch.Generator, device: torch.device | str) -> Tensor | None:
    """``n`` one-hot classes ``[n, c_dim]`` drawn uniformly (``None`` when ``c_dim == 0``)."""
    if c_dim == 0:
        return None
    labels = torch.randint(0, c_dim, (n,), generator=generator)
    return torch.nn.functional.one_hot(labels, c_dim).float().to(device)


def _chunks(z: Tensor, c: Tensor | None, size: int = 2048) -> list[tuple[Tensor, Tensor | None]]:
    """``(z, c)`` split into row chunks of ``size`` (``c`` may be None)."""
    zs = z.split(size)
    return list(zip(zs, c.split(size) if c is not None else [None] * len(zs)))


class StyleGenerator(Generator):
    """A generator with a mapping network z ``[B, z_dim]`` → w ``[B, w_dim]`` whose synthesis reads ``num_ws``
    rows of w+ (StyleGAN2, StyleGAN3). Subclasses provide ``mapping``, ``num_ws``, ``c_dim`` and the ``w_avg``
    buffer ``[w_dim]``; conversion along z → w → w+ and the mean latent come from here.

    Class-conditional models (``c_dim > 0``) need the class only for z → w: :meth:`convert` takes it as ``c``
    ``[B or 1, c_dim]``; w and w+ are rendered without one. Wrap such a model with
    :func:`ganinv.generators.conditional.with_class` to use it where only latents are passed around."""

    num_ws: int
    w_avg: Tensor
    c_dim: int = 0
    mapping: Callable[..., Tensor]  # a method or a submodule: mapping(z, c=None)

    def convert(self, latent: Tensor, src: str, dst: str, c: Tensor | None = None) -> Tensor:
        """Map latents along z → w → w+; ``c`` ``[B or 1, c_dim]``: the class of a conditional model (z → w only)."""
        order = ["z", "w", "w+"]
        if src not in order or dst not in order or order.index(dst) < order.index(src):
            return super().convert(latent, src, dst)
        if src == "z" and dst != "z":
            latent, src = self.mapping(latent, c), "w"
        if src == "w" and dst == "w+":
            latent = latent.unsqueeze(1).repeat(1, self.num_ws, 1)
        return latent

    def mean_latent(self, space: str = "w") -> Tensor:
        if space == "z":
            return super().mean_latent("z")
        return self.convert(self.w_avg.view(1, -1), "w", space)
