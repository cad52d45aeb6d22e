"""Inversion with the image's pose as unknowns: StyleGAN3's input translation and rotation, optimised with the code.

StyleGAN3 samples its Fourier input at coordinates moved by a ``[3, 3]`` input transform, so a shifted or rotated
image of the model's distribution is the same code rendered with another transform. Inverting an unaligned image
(a face that is not centred, a tilted horizon) therefore does best when the transform is searched too — the idea
Alaluf et al. use in "Third Time's the Charm?" (2022) to edit unaligned images and videos with StyleGAN3.

:class:`PosedGenerator` makes the pose part of the latent, so the whole optimisation engine (batching, memory
budget, best-of-N starts, per-row stopping, restarts, Adam / L-BFGS, the prior) runs unchanged: its space
``"<base>:pose"`` is the base code (``w`` ``[w_dim]`` or ``w+`` ``[num_ws, w_dim]``, flattened) followed by three
pose coordinates ``u`` in units of the pose prior's standard deviations, ``(dx, dy, angle) = u · pose_std``, and
its ``z`` is the generator's z followed by three standard-normal pose coordinates (so best-of-N starts try random
poses and the latent prior is a Gaussian prior on the pose). :func:`invert_pose` runs the engine on it and returns
the code in the base space with the pose (``extra["pose"]`` ``[B, 3]``: dx, dy in image widths, angle in degrees)
and the transform to render it with (``extra["transform"]`` ``[B, 3, 3]``, the matrix
:meth:`~ganinv.generators.stylegan3.StyleGAN3Generator.set_transform` takes).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator, LatentSpace
from ganinv.inverters.base import InversionResult

#: Default standard deviations of the pose prior: shifts in image widths, the angle in radians (~8.6°).
POSE_STD = (0.1, 0.1, 0.15)
POSE_DIMS = 3


def pose_transform(pose: Tensor) -> Tensor:
    """Input transforms ``[B, 3, 3]`` for poses ``[B, 3]`` = (dx, dy in image widths, angle in radians): the image
    content moves by (dx, dy) and turns by the angle (counter-clockwise as displayed); differentiable. The same
    matrix as :func:`ganinv.generators.stylegan3.image_transform` (the inverse of the content's motion)."""
    dx, dy, a = pose.unbind(1)
    c, s = torch.cos(a), torch.sin(a)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    # content motion F = [[c, s, dx], [-s, c, dy], [0, 0, 1]]; the generator samples at F⁻¹ = [[Rᵀ, -Rᵀt], [0, 1]]
    return torch.stack([torch.stack([c, -s, -(c * dx - s * dy)], 1),
                        torch.stack([s, c, -(s * dx + c * dy)], 1),
                        torch.stack([zero, zero, one], 1)], 1)


class PosedGenerator(Generator):
    """A StyleGAN3 (any generator with ``synthesis(ws, transform)``) whose latent carries the input pose.

    Spaces: ``z`` ``[z_dim + 3]`` and ``"<base>:pose"`` ``[D + 3]`` where ``D`` is the flattened base code
    (``w_dim`` for ``w``, ``num_ws · w_dim`` for ``w+``). Renders ``[B, C, H, W]`` in the wrapped model's native
    range.
    """

    arch = "posed"

    def __init__(self, G: Generator, base: str = "w+", pose_std: tuple[float, float, float] = POSE_STD) -> None:
        super().__init__()
        if not callable(getattr(G, "synthesis", None)) or not hasattr(G, "num_ws") or "z" not in G.latent_spaces:
            raise InputError(f"pose search moves StyleGAN3's input transform; this {G.arch} generator has none "
                             "(it works on StyleGAN3-T and -R)")
        if base not in ("w", "w+"):
            raise InputError(f"pose search runs in w or w+, not {base!r}")
        if len(pose_std) != POSE_DIMS or not all(math.isfinite(v) and v > 0 for v in pose_std):
            raise InputError(f"the pose prior needs three positive standard deviations, got {pose_std}")
        self.G, self.base = G, base
        self.resolution, self.channels, self.image_shape = G.resolution, G.channels, G.image_shape
        self.output_range = G.output_range
        self.num_ws: int = G.num_ws
        self.base_shape = tuple(G.space(base).shape)
        self.register_buffer("pose_std", torch.tensor(pose_std, dtype=torch.float32), persistent=False)

    @property
    def space_name(self) -> str:
        return f"{self.base}:pose"

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        z = self.G.space("z").shape[0]
        d = math.prod(self.base_shape)
        return {"z": LatentSpace("z", (z + POSE_DIMS,), "z, then 3 standard-normal pose coordinates"),
                self.space_name: LatentSpace(self.space_name, (d + POSE_DIMS,),
                                             f"{self.base} flattened, then (dx, dy, angle) / pose_std")}

    def split(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, D + 3]`` → the base code ``[B, *base_shape]`` and the pose ``[B, 3]`` (widths, widths, radians)."""
        code = latent[:, :-POSE_DIMS].reshape(latent.shape[0], *self.base_shape)
        return code, latent[:, -POSE_DIMS:] * self.pose_std.to(latent)

    def join(self, code: Tensor, pose: Tensor) -> Tensor:
        """Inverse of :meth:`split`."""
        return torch.cat([code.flatten(1), pose / self.pose_std.to(pose)], dim=1)

    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        if space == "z":
            latent, space = self.convert(latent, "z", self.space_name), self.space_name
        code, pose = self.split(latent)
        ws = self.G.convert(code, self.base, "w+") if self.base == "w" else code
        return self.G.synthesis(ws, pose_transform(pose))

    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        if src == dst:
            return latent
        if src == "z" and dst == self.space_name:
            code = self.G.convert(latent[:, :-POSE_DIMS], "z", self.base)
            return torch.cat([code.flatten(1), latent[:, -POSE_DIMS:]], dim=1)
        return super().convert(latent, src, dst)

    def mean_latent(self, space: str | None = None) -> Tensor:
        space = space or self.space_name
        if space == "z":
            return super().mean_latent("z")
        self.space(space)
        code = self.G.mean_latent(self.base)
        return torch.cat([code.flatten(1), torch.zeros(1, POSE_DIMS, device=code.device)], dim=1)

    @property
    def default_space(self) -> str:
        return self.space_name


class PoseBoundGenerator(Generator):
    """A StyleGAN3 bound to fixed input transforms: renders its ordinary codes (``z``, ``w``, ``w+``) as the wrapped
    generator does, but with ``transform`` (``[3, 3]`` for every row, or ``[B, 3, 3]`` one per row) as the input
    transform — how a code found by :func:`invert_pose` is edited, interpolated or mixed. Other attributes are the
    wrapped generator's (SeFa, directions and the mean latent see the same model)."""

    def __init__(self, G: Generator, transform: Tensor) -> None:
        super().__init__()
        if not callable(getattr(G, "synthesis", None)) or not hasattr(G, "num_ws"):
            raise InputError(f"a pose (input transform) needs a StyleGAN3; this {G.arch} generator has none")
        transform = torch.as_tensor(transform, dtype=torch.float32)
        if transform.dim() == 2:
            transform = transform.unsqueeze(0)
        if transform.dim() != 3 or tuple(transform.shape[1:]) != (3, 3) or not torch.isfinite(transform).all():
            raise InputError(f"an input transform must be finite [3, 3] matrices, got {list(transform.shape)}")
        self.G = G
        self.arch = G.arch
        self.resolution, self.channels, self.image_shape = G.resolution, G.channels, G.image_shape
        self.output_range = G.output_range
        self.register_buffer("transform", transform.to(G.device), persistent=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("G")
            if inner is None or name.startswith("__"):
                raise
            return getattr(inner, name)

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        return dict(self.G.latent_spaces)

    @property
    def noise_shapes(self) -> list[tuple[int, ...]]:
        return self.G.noise_shapes

    @property
    def default_space(self) -> str:
        return self.G.default_space

    @property
    def device(self) -> torch.device:
        return self.G.device

    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        return self.G.convert(latent, src, dst)

    def mean_latent(self, space: str = "w") -> Tensor:
        return self.G.mean_latent(space)

    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        ws = self.G.convert(latent, space, "w+")
        t = self.transform
        if t.shape[0] not in (1, ws.shape[0]):
            raise InputError(f"{t.shape[0]} input transforms for {ws.shape[0]} codes")
        return self.G.synthesis(ws, t.expand(ws.shape[0], 3, 3).to(ws.device))

    def forward(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        """z ``[B, z_dim]`` → native image ``[B, C, H, W]`` rendered with the bound transform(s)."""
        return self._native(self.truncate(self.G.convert(z, "z", "w"), truncation, "w"), "w", None)

    def config(self) -> dict[str, Any]:
        return self.G.config()


def invert_pose(G: Generator, target: Tensor, *, space: str = "w+", pose_std: tuple[float, float, float] = POSE_STD,
                callback: Any = None, **options: Any) -> InversionResult:
    """Optimise a code in ``space`` (``w`` / ``w+``) and each image's pose together (see the module notes).

    Args:
        G: a StyleGAN3 generator.
        target: ``[B, C, H, W]`` images in [0, 1].
        pose_std: the pose prior's standard deviations (dx, dy in image widths, angle in radians); the pose
            coordinates are optimised in these units, and the latent prior (``prior``) is a Gaussian on them.
        options: the optimisation engine's options (:class:`~ganinv.inverters.optimize.OptimizeSettings` fields).

    Returns:
        The engine's result with ``latent`` in ``space`` (``[B, *shape]``), ``image`` rendered with each row's pose,
        ``extra["pose"]`` ``[B, 3]`` (dx, dy in image widths, angle in degrees, counter-clockwise) and
        ``extra["transform"]`` ``[B, 3, 3]`` (the input transform rendering it).
    """
    from ganinv.inverters import invert

    if options.get("noise") not in (None, "fixed"):
        raise InputError("StyleGAN3 has no noise maps to optimise; drop --noise")
    P = PosedGenerator(G, space, pose_std).to(G.device)
    result = invert(P, target, method="optimize", space=P.space_name, callback=callback, **options)
    code, pose = P.split(result.latent.detach())
    shown = torch.stack([pose[:, 0], pose[:, 1], torch.rad2deg(pose[:, 2])], dim=1)
    settings = {**result.settings, "space": space, "pose": True, "pose_std": list(pose_std)}
    return replace(result, latent=code, space=space, settings=settings,
                   extra={**result.extra, "pose": shown.cpu(), "transform": pose_transform(pose).cpu()})


__all__ = ["POSE_STD", "PoseBoundGenerator", "PosedGenerator", "invert_pose", "pose_transform"]
